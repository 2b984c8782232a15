"""One OS process of the multi-process budget test: N plan reads through a real client.

Usage: python -m tests.ctct.budget_process <database_url> <sandbox_url> <account_id> <calls>
Prints one JSON line: when its calls started and ended, and how many failed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from app.ctct.client import build_ctct_client
from app.ctct.errors import CtctError
from app.db import create_engine
from app.settings import CtctSettings


async def run(
    database_url: str, sandbox_url: str, account_id: str, calls: int
) -> dict[str, object]:
    settings = CtctSettings(
        base_url=f"{sandbox_url}/v3",
        token_url=f"{sandbox_url}/oauth2/token",
        rate_per_second=4,
        # The test is about sharing the pace, not about its margin: 50 ms of jitter per four
        # calls leaves room for a loaded machine (and the sandbox in the test's process).
        pacing_slack=0.05,
        timeout_seconds=5.0,
        read_retries=0,
    )
    engine = create_engine(database_url, pool_size=2)
    failures: list[str] = []
    client = build_ctct_client(settings, engine=engine)
    started = time.time()
    try:
        for _ in range(calls):
            try:
                await client.get_plan(account_id, max_wait=30.0)
            except CtctError as exc:
                failures.append(type(exc).__name__)
    finally:
        await client.aclose()
        await engine.dispose()
    return {"started": started, "ended": time.time(), "failures": failures}


def main() -> None:
    database_url, sandbox_url, account_id, calls = sys.argv[1:5]
    result = asyncio.run(run(database_url, sandbox_url, account_id, int(calls)))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
