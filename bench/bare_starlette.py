"""The floor for bench/access.py: a bare Starlette route returning an access decision's JSON.

    .venv/bin/python bench/bare_starlette.py --port 8001

Served like `partnergate serve`: uvicorn with uvloop and httptools, no access log.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DECISION = {
    "account_id": "bench000001",
    "allowed": True,
    "status": "approved",
    "reason": "approved",
    "verified_at": "2026-12-01T00:00:00+00:00",
    "stale": False,
}


async def decision(request: Request) -> JSONResponse:
    return JSONResponse({**DECISION, "account_id": request.path_params["account_id"]})


app = Starlette(routes=[Route("/v1/access/{account_id}", decision)])

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
