"""`partnergate ctct webhooks …` against the sandbox on loopback, as an operator would run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from app.sandbox.server import running_sandbox
from tests.cli_env import cli_environment
from tests.conftest import new_sandbox
from tests.webhooks.receiver import Receiver, running_receiver


@pytest.mark.slow
def test_an_operator_subscribes_lists_tests_and_unsubscribes(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = new_sandbox(rate_per_second=100_000)
    receiver = Receiver()
    with running_receiver(receiver) as hook_url, running_sandbox(state) as sandbox_url:
        cli_environment(monkeypatch, tmp_path, database_url, sandbox_url)

        assert (
            main(["ctct", "webhooks", "subscribe", hook_url, "--topic", "1", "--topic", "3"]) == 0
        )
        assert main(["ctct", "webhooks", "list"]) == 0
        listed = capsys.readouterr().out
        assert main(["ctct", "webhooks", "test", "--topic", "3"]) == 0
        assert main(["ctct", "webhooks", "unsubscribe"]) == 0
        unsubscribed = capsys.readouterr().out
        assert main(["ctct", "webhooks", "test"]) == 1

    # structlog writes its lines to stdout too when the command has not configured logging.
    rows = [line.split() for line in listed.splitlines() if line.split()[:1] in (["1"], ["3"])]
    assert [(row[0], row[-1]) for row in rows] == [("1", hook_url), ("3", hook_url)]
    [notice] = receiver.received
    assert json.loads(notice.body)["event_type"] == "account.cancelled"
    assert "x-ctct-signature" in notice.headers
    words = [line.split()[0] for line in unsubscribed.splitlines()]
    assert [word for word in words if word in ("unsubscribed", "was")] == [
        "unsubscribed",
        "was",
        "unsubscribed",
        "was",
    ]
    assert state.subscriptions.of("ours") == []
