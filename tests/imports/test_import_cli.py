"""`partnergate import FILE.csv [--dry-run]` with a 1,000-row file that has every outcome: the dry
run writes nothing and predicts the run; a second run changes nothing more."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.cli import main
from app.db import libpq_url
from app.sandbox.server import running_sandbox
from app.sandbox.state import SandboxState
from tests.cli_env import cli_environment
from tests.conftest import new_sandbox

LIST_PATH = "/v3/partner/accounts"
TABLES = (
    "client",
    "status_event",
    "transfer_request_event",
    "import_job",
    "import_row",
    "webhook_event",
    "partner_listing",
    "procrastinate_jobs",
)


def _sql(database_url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        cursor = conn.execute(query, args)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def _counts(database_url: str) -> dict[str, int]:
    return {table: _sql(database_url, f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}


def _store(database_url: str, ids: list[str], status: str) -> None:
    """Clients straight into the store (a fixture shortcut)."""
    _sql(
        database_url,
        "INSERT INTO client (encoded_account_id, status, evidence_status, status_reason, "
        "verified_at, verified_via, version) SELECT id, %s, %s, 'fixture', "
        "now() - interval '2 days', 'partner_list', 1 FROM unnest(%s::varchar[]) AS id",
        status,
        status,
        ids,
    )


def _file(sandbox: SandboxState, database_url: str, tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """1,000 rows, every outcome represented; returns the file and the outcomes expected."""
    rows: list[tuple[str, str, str, str]] = []
    new = sandbox.seed_accounts(700, login_prefix="newbie")
    rows += [(a.encoded_account_id, "", "", "") for a in new[:600]]
    rows += [("", a.login_name.upper(), "approved", "") for a in new[600:]]
    known = sandbox.seed_accounts(100, login_prefix="known")
    _store(database_url, [a.encoded_account_id for a in known], "approved")
    rows += [(a.encoded_account_id, "", "approved", "") for a in known]
    returned = sandbox.seed_accounts(50, login_prefix="returned")
    _store(database_url, [a.encoded_account_id for a in returned], "other_partner")
    rows += [(a.encoded_account_id, "", "", "") for a in returned]
    theirs = sandbox.seed_accounts(90, partner="other", login_prefix="theirs")
    rows += [(a.encoded_account_id, "", "billing_approved", "resold") for a in theirs[:50]]
    rows += [(a.encoded_account_id, "", "approved", "") for a in theirs[50:]]
    rows += [(f"a0nobody{n:04}", "", "", "") for n in range(30)]
    rows += [("", f"ghost_{n:02}", "", "") for n in range(10)]
    rows += [("not an id!", "", "", "")] * 7
    rows += [(a.encoded_account_id, "", "billing_approved", "") for a in theirs[:7]]
    rows += [(new[0].encoded_account_id, "", "", "")] * 6  # the same account again
    assert len(rows) == 1000
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["encoded_account_id", "login_name", "wish", "note"])
    writer.writerows(rows)
    path = tmp_path / "partner-list.csv"
    path.write_text(buffer.getvalue())
    expected = {
        "added": 700,
        "already_so": 100,
        "approved_by_evidence": 50,
        "billing_approved": 50,
        "refused": 40 + 7 + 7 + 6,
        "not_found": 30 + 10,
    }
    return path, expected


def _list_calls(sandbox: SandboxState) -> int:
    return sum(1 for call in sandbox.calls.calls(LIST_PATH, "GET") if call.path == LIST_PATH)


def _outcomes(report: Path) -> dict[int, str]:
    with report.open() as stream:
        return {int(row["line"]): row["outcome"] for row in csv.DictReader(stream)}


@pytest.mark.slow
def test_a_1000_row_file_dry_run_then_twice_every_outcome_and_nothing_more_the_second_time(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = new_sandbox(rate_per_second=100_000)
    path, expected = _file(sandbox, database_url, tmp_path)
    with running_sandbox(sandbox) as sandbox_url:
        cli_environment(monkeypatch, tmp_path, database_url, sandbox_url)
        monkeypatch.setenv("USER", "alice")

        before = _counts(database_url)
        assert main(["import", str(path), "--dry-run", "--report", "dry.csv"]) == 0
        assert _counts(database_url) == before
        dry_list_calls = _list_calls(sandbox)

        assert main(["import", str(path), "--report", "first.csv"]) == 0
        first_list_calls = _list_calls(sandbox) - dry_list_calls
        after_first = _counts(database_url)
        events_first = _sql(
            database_url,
            "SELECT source, actor, count(*) FROM status_event WHERE actor = 'cli:alice' "
            "GROUP BY source, actor ORDER BY source",
        )
        billing_note = _sql(
            database_url, "SELECT note FROM status_event WHERE source = 'person' LIMIT 1"
        )[0][0]

        assert main(["import", str(path), "--report", "second.csv"]) == 0
        after_second = _counts(database_url)
    output = capsys.readouterr().out

    first = _outcomes(tmp_path / "first.csv")
    assert Counter(first.values()) == expected
    assert _outcomes(tmp_path / "dry.csv") == first
    assert dry_list_calls == first_list_calls == 17  # 850 of our accounts, 50 a page

    # 700 added and 50 returned (ours), 90 other partner's recorded from their probes; then the
    # importer's 50 billing approvals, a person's decisions.
    assert events_first == [("import", "cli:alice", 840), ("person", "cli:alice", 50)]
    assert billing_note.startswith("resold (import ")
    second = _outcomes(tmp_path / "second.csv")
    changed = {line: (first[line], second[line]) for line in first if first[line] != second[line]}
    assert set(changed.values()) == {
        ("added", "already_so"),
        ("approved_by_evidence", "already_so"),
        ("billing_approved", "already_so"),
    }
    for table in ("client", "status_event", "transfer_request_event", "webhook_event"):
        assert after_second[table] == after_first[table], table
    assert after_first["client"] == before["client"] + 700 + 50 + 40
    assert "added 700" in output
    assert "dry run, nothing written" in output
