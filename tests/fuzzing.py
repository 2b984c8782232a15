"""Fuzz an app from its own `/openapi.json` with schemathesis, in-process (ASGI), and report.

Every operation the document lists is exercised, whatever is added later, in schemathesis'
examples, coverage and fuzzing phases, with data that fits the schema (positive) and data that
does not (negative). Three checks: no 5xx (`not_a_server_error`), every status documented for
its operation (`status_code_conformance`), every body matching its documented schema
(`response_schema_conformance`). Used by `tests/test_fuzz.py` (bounded, deterministic) and by
`bench/fuzz.py` (longer, random).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from fastapi import FastAPI
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi

from app.audit import service as audit_service
from app.auth import service as keys_service
from app.auth.scopes import Scope
from app.clients import service as clients_service
from app.clients import transfers
from app.clients.evidence import Evidence, Membership, MirroredAttributes
from app.clients.models import EventSource, VerifiedVia
from app.db import create_engine, create_sessionmaker
from app.sandbox.app import create_sandbox_app
from app.sandbox.partners import OUR_ENCODED_PARTNER_ID
from app.settings import Settings
from tests.conftest import new_sandbox

CHECKS = ("not_a_server_error", "status_code_conformance", "response_schema_conformance")


@dataclass
class FuzzReport:
    """What a run did: requests sent, operations covered, failures, engine errors, time."""

    cases: int = 0
    seconds: float = 0.0
    operations: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    # Per operation: positive (schema-valid) cases sent, and how many were answered 400.
    positive: dict[str, list[int]] = field(default_factory=dict)

    def mostly_rejected(self) -> list[str]:
        """Operations that answered 400 to most data their schema allows (schema too loose)."""
        return sorted(
            label for label, (sent, refused) in self.positive.items() if refused * 2 > sent
        )

    def summary(self) -> str:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        return (
            f"{self.cases} cases over {len(self.operations)} operations in {self.seconds:.1f} s "
            f"({statuses}); {len(self.failures)} failures, {len(self.errors)} errors; "
            f"{len(self.mostly_rejected())} operations refused most schema-valid data"
        )


async def prepare_database(database_url: str) -> str:
    """An all-scope key, and a few rows so that ids like 1 name something."""
    engine = create_engine(database_url)
    sessionmaker = create_sessionmaker(engine)
    actor = clients_service.Actor(EventSource.AUDIT, name="fuzz-seed")
    try:
        async with sessionmaker() as session, session.begin():
            key = await keys_service.create_key(session, "fuzz", list(Scope))
            for n, membership in enumerate(Membership):
                await clients_service.record_evidence(
                    session,
                    f"a07e1lxqqq{n:02d}",
                    Evidence(membership, VerifiedVia.PARTNER_LIST, "seed", MirroredAttributes()),
                    actor,
                )
            await audit_service.request_run(session, requested_by="fuzz-seed")
        async with sessionmaker() as session, session.begin():
            await transfers.file_transfer_request(
                session,
                f"a07e1lxqqq{list(Membership).index(Membership.NO_PARTNER):02d}",
                note="seeded",
                actor=clients_service.Actor(EventSource.PERSON, name="fuzz-seed"),
            )
    finally:
        await engine.dispose()
    return key


def sandboxed_app(settings: Settings) -> FastAPI:
    """The API with an in-process sandbox as CTCT (our partner id set to the sandbox's)."""
    from app.main import create_app

    ctct = settings.ctct.model_copy(update={"partner_id": OUR_ENCODED_PARTNER_ID})
    sandbox = new_sandbox(rate_per_second=100_000)
    return create_app(
        settings.model_copy(update={"ctct": ctct}),
        ctct_transport=httpx.ASGITransport(app=create_sandbox_app(sandbox)),
    )


def _config(
    headers: Mapping[str, str], max_examples: int, seed: int | None, deterministic: bool
) -> SchemathesisConfig:
    data: dict[str, Any] = {
        "headers": dict(headers),
        "generation": {
            "mode": "all",
            "max-examples": max_examples,
            "deterministic": deterministic,
            "database": "none",
        },
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "phases": {"stateful": {"enabled": False}},
        "continue-on-failure": True,
        # No state carried between runs: the suite's run stays deterministic, and the work
        # tree clean.
        "cache": {"enabled": False},
    }
    if seed is not None:
        data["seed"] = seed
    return SchemathesisConfig.from_dict(data)


def fuzz(
    app: Any,
    *,
    headers: Mapping[str, str],
    max_examples: int,
    seed: int | None = None,
    deterministic: bool = True,
) -> FuzzReport:
    """Run schemathesis over every operation of `app` (an ASGI app; its lifespan is started
    here, in schemathesis' own event loop thread, and stopped before returning)."""
    config = _config(headers, max_examples, seed, deterministic)
    report = FuzzReport()
    started = time.monotonic()
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                _record(report, event)
            elif isinstance(event, events.NonFatalError):
                report.errors.append(f"{event.label}: {event.info.format()}")
            elif isinstance(event, events.FatalError):
                report.errors.append(f"fatal: {event.exception!r}")
    finally:
        asgi.shutdown_lifespans()
        report.seconds = time.monotonic() - started
    return report


def _record(report: FuzzReport, event: events.ScenarioFinished) -> None:
    recorder = event.recorder
    report.operations.add(recorder.label)
    for case_id, interaction in recorder.interactions.items():
        report.cases += 1
        if interaction.response is None:
            continue
        code = interaction.response.status_code
        report.statuses[code] = report.statuses.get(code, 0) + 1
        node = recorder.cases.get(case_id)
        meta = node.value.meta if node is not None else None
        if meta is not None and meta.generation.mode is GenerationMode.POSITIVE:
            counts = report.positive.setdefault(recorder.label, [0, 0])
            counts[0] += 1
            counts[1] += code == 400
    for checks in recorder.checks.values():
        for check in checks:
            if check.status is Status.FAILURE and check.failure_info is not None:
                failure = check.failure_info.failure
                line = (
                    f"{recorder.label}: {check.name}: {failure.title}: {failure.message}\n"
                    f"    {check.failure_info.code_sample}"
                )
                if line not in report.failures:
                    report.failures.append(line)
