"""`partnergate subscribers …`: the same subscribers, managed from the shell."""

from __future__ import annotations

from pathlib import Path

import pytest
from standardwebhooks import Webhook

from app.cli import main
from tests.cli_env import cli_environment


def _secret(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("whsec_"))


def test_an_operator_adds_lists_rotates_and_removes_a_subscriber(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_environment(monkeypatch, tmp_path, database_url, "http://sandbox.invalid")
    add = ["subscribers", "add", "--name", "pager", "--url", "https://pager.example/hooks"]

    assert main([*add, "--events", "audit.demotions_held,ctct.quota_low"]) == 0
    secret = _secret(capsys.readouterr().out)
    Webhook(secret)  # a valid Standard Webhooks secret
    assert main(["subscribers", "list"]) == 0
    listed = capsys.readouterr().out
    assert main(["subscribers", "rotate", "--name", "pager"]) == 0
    rotated = _secret(capsys.readouterr().out)
    assert main([*add, "--events", "*"]) == 2  # the name is taken
    assert "already exists" in capsys.readouterr().err
    assert main(["subscribers", "add", "--name", "x", "--url", "ftp://x", "--events", "*"]) == 2
    assert main(["subscribers", "add", "--name", "y", "--url", "https://y", "--events", "no"]) == 2
    assert main(["subscribers", "remove", "--name", "pager"]) == 0
    assert main(["subscribers", "list"]) == 0
    after = capsys.readouterr().out

    assert "pager" in listed
    assert "audit.demotions_held,ctct.quota_low" in listed
    assert secret not in listed
    assert rotated != secret
    assert "pager" not in after.split("subscriber 'pager' removed")[-1]
