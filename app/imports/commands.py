"""`partnergate import FILE.csv [--dry-run] [--report OUT.csv]`: bring in a partner's list.

Without `--dry-run` the file becomes an import like one posted to `POST /v1/imports`, run here
and now (its report stays at `GET /v1/imports/{id}/report`); with it, every row's outcome is
computed against CTCT and the store and nothing is written. A progress bar goes to stderr; the
summary to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import httpx

from app.ctct.client import build_ctct_client
from app.db import create_engine, create_sessionmaker
from app.errors import ValidationFailed
from app.imports import csv_rows, flow, runner, service
from app.imports.applier import RowResult
from app.imports.csv_rows import RowIn
from app.imports.flow import CallCounter, Progress
from app.imports.models import Outcome, Phase
from app.settings import Settings

BAR_WIDTH = 30


class ProgressBar:
    """One line on a terminal, redrawn in place; a line per phase and per 10% elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._live = stream.isatty()
        self._last = ""
        self._shown: tuple[Phase, int] | None = None

    def _line(self, progress: Progress) -> tuple[str, int]:
        if progress.phase is Phase.LISTING:
            return (
                f"reading our partner list: page {progress.pages_read} "
                f"({progress.accounts_listed} accounts)",
                0,
            )
        if progress.phase is Phase.PROBING:
            return "asking CTCT about accounts missing from our list", 0
        share = progress.rows_done / progress.rows_total if progress.rows_total else 1.0
        filled = round(share * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        done, total = progress.rows_done, progress.rows_total
        return f"applying rows [{bar}] {share:4.0%} {done}/{total}", int(share * 10)

    async def __call__(self, progress: Progress) -> None:
        line, tenth = self._line(progress)
        if self._live:
            self._stream.write("\r" + line.ljust(len(self._last)))
            self._last = line
            if progress.phase is Phase.DONE:
                self._stream.write("\n")
        elif self._shown != (progress.phase, tenth):
            self._stream.write(line + "\n")
        self._shown = (progress.phase, tenth)
        self._stream.flush()


def _summary(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{outcome.value} {outcomes.get(outcome.value, 0)}" for outcome in Outcome)


def _read(path: str, settings: Settings) -> list[RowIn]:
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{path}: no such file")
    if file.stat().st_size > settings.imports.max_bytes:
        raise ValueError(f"{path}: larger than IMPORTS_MAX_BYTES ({settings.imports.max_bytes})")
    try:
        return csv_rows.parse(file.read_bytes(), max_rows=settings.imports.max_rows)
    except ValidationFailed as exc:
        raise ValueError(f"{path}: {exc.detail.removeprefix('The import file: ')}") from None


def _write_report(path: str, results: list[RowResult], rows: list[RowIn]) -> None:
    by_line = {row.line: row for row in rows}
    with Path(path).open("w", encoding="utf-8", newline="") as out:
        out.write(service.csv_line(service.REPORT_COLUMNS))
        for result in results:
            row = by_line[result.line]
            values = (
                result.line,
                row.encoded_account_id,
                row.login_name,
                row.wish.value if row.wish else None,
                result.outcome.value,
                result.detail,
                result.account_id,
                result.status,
            )
            out.write(service.csv_line(values))


async def _dry_run(settings: Settings, url: str, rows: list[RowIn], actor: str) -> flow.RunResult:
    engine = create_engine(url, pool_size=2, max_overflow=2)
    counter = CallCounter(token_path=httpx.URL(settings.ctct.token_url).path)
    try:
        async with build_ctct_client(
            settings.ctct, engine=engine, on_request=counter.on_request
        ) as ctct:
            result = await flow.run(
                create_sessionmaker(engine),
                ctct,
                rows,
                actor_name=actor,
                import_id=None,
                dry_run=True,
                report=ProgressBar(sys.stderr),
            )
    finally:
        await engine.dispose()
    print(f"CTCT calls: {counter.list_calls} list, {counter.probe_calls} probes")
    return result


async def _import(
    settings: Settings, url: str, rows: list[RowIn], args: argparse.Namespace
) -> tuple[int, list[str]]:
    """Run the file as a stored import; the exit code and the report's lines."""
    engine = create_engine(url, pool_size=2, max_overflow=2)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with sessionmaker() as session, session.begin():
            job = await service.create(
                session,
                rows,
                filename=Path(args.file).name,
                requested_by=_actor(),
                dry_run=False,
                queue=False,
            )
        finished = await runner.run_import(
            sessionmaker, engine, settings, job.id, on_progress=ProgressBar(sys.stderr)
        )
        report = [line async for line in service.report_csv(sessionmaker, job.id)]
    finally:
        await engine.dispose()
    assert finished is not None
    print(f"import {finished.id}: {finished.state}; {_summary(finished.outcomes)}")
    print(f"CTCT calls: {finished.list_calls} list, {finished.probe_calls} probes")
    print(f"report: GET /v1/imports/{finished.id}/report")
    if finished.error:
        print(f"partnergate: {finished.error}", file=sys.stderr)
        return 1, report
    return 0, report


def _actor() -> str:
    return f"cli:{os.environ.get('USER', 'unknown')}"


def _command(args: argparse.Namespace, url: str) -> int:
    settings = Settings()
    rows = _read(args.file, settings)
    if not args.dry_run:
        code, report = asyncio.run(_import(settings, url, rows, args))
        if args.report:
            Path(args.report).write_text("".join(report), encoding="utf-8", newline="")
        return code
    result = asyncio.run(_dry_run(settings, url, rows, _actor()))
    if result.error:
        print(f"partnergate: {result.error}", file=sys.stderr)
        return 1
    counts = Counter(r.outcome.value for r in result.results)
    print(f"dry run, nothing written: {_summary(dict(counts))}")
    if args.report:
        _write_report(args.report, result.results, rows)
    return 0


def register(commands: Any, with_database: Callable[..., Any]) -> None:
    """Add `import FILE.csv` to the `partnergate` parser."""
    parser = commands.add_parser(
        "import", help="bring in a CSV of accounts (ids or login names, optional wishes)"
    )
    parser.add_argument("file", help="CSV with encoded_account_id or login_name, wish, note")
    parser.add_argument("--dry-run", action="store_true", help="show the outcomes, write nothing")
    parser.add_argument("--report", help="also write the per-row report to this CSV file")
    parser.set_defaults(handler=with_database(_command))
