"""The yardstick for bench/access.py: a bare FastAPI route returning the same decision dict.

    .venv/bin/python bench/bare_fastapi.py --port 8002

Served like `partnergate serve`: uvicorn with uvloop and httptools, no access log.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from fastapi import FastAPI

DECISION = {
    "account_id": "bench000001",
    "allowed": True,
    "status": "approved",
    "reason": "approved",
    "verified_at": "2026-12-01T00:00:00+00:00",
    "stale": False,
}

app = FastAPI()


@app.get("/v1/access/{account_id}")
async def decision(account_id: str) -> dict[str, Any]:
    return {**DECISION, "account_id": account_id}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
