"""Property-based fuzzing of the whole API from its own OpenAPI document (issue 12).

Every operation of `/openapi.json`, positive and negative data, with the sandbox as CTCT and a
key holding every scope: no 5xx, no undocumented status, no body outside its schema. Bounded and
deterministic here (`FUZZ_MAX_EXAMPLES` per operation and phase); `bench/fuzz.py` runs longer.
"""

from __future__ import annotations

import asyncio
import os

from tests.conftest import FAST_CTCT, build_settings
from tests.fuzzing import fuzz, prepare_database, sandboxed_app

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "12"))


def test_no_input_breaks_any_operation(database_url: str) -> None:
    key = asyncio.run(prepare_database(database_url))
    app = sandboxed_app(build_settings(database_url, ctct=FAST_CTCT))

    report = fuzz(app, headers={"Authorization": f"Bearer {key}"}, max_examples=MAX_EXAMPLES)

    print(f"\nfuzz: {report.summary()}; mostly refused: {report.mostly_rejected()}")
    assert report.errors == [], "\n".join(report.errors)
    assert report.failures == [], "\n".join(report.failures)
    documented = sum(len(item) for item in app.openapi()["paths"].values())
    assert len(report.operations) >= documented, sorted(report.operations)
    assert report.cases >= 20 * documented
