"""Two OS processes sharing one database never exceed CTCT's per-second limit between them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from app.sandbox.server import running_sandbox
from app.sandbox.state import SandboxState

REPO_ROOT = Path(__file__).resolve().parents[2]
CALLS_PER_PROCESS = 10
PROCESS_TIMEOUT_SECONDS = 60


def _max_in_any_window(times: list[datetime], seconds: float = 1.0) -> int:
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        end = start + timedelta(seconds=seconds)
        best = max(best, sum(1 for t in ordered[i:] if t < end))
    return best


@pytest.mark.slow
def test_two_processes_never_put_more_than_the_rate_in_any_second(database_url: str) -> None:
    state = SandboxState()
    account = state.seed_account()

    with running_sandbox(state) as sandbox_url:
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.ctct.budget_process",
                    database_url,
                    sandbox_url,
                    account.encoded_account_id,
                    str(CALLS_PER_PROCESS),
                ],
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=PROCESS_TIMEOUT_SECONDS) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert [r["failures"] for r in results] == [[], []]
    first, second = results
    assert first["started"] < second["ended"]
    assert second["started"] < first["ended"]

    calls = state.calls.calls("/v3/partner")
    assert len(calls) == 2 * CALLS_PER_PROCESS
    assert {c.status for c in calls} == {200}
    assert _max_in_any_window([c.at for c in calls]) <= 4
