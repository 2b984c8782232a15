"""A long fuzz of the whole API from its own OpenAPI document (schemathesis, in-process).

The suite's `tests/test_fuzz.py` runs a bounded, deterministic version; this one draws fresh
random data (or replays `--seed`) with many more examples per operation, against a migrated
database of its own (DATABASE_URL's server, or the embedded one) and the sandbox as CTCT.

    .venv/bin/python bench/fuzz.py --max-examples 200 [--seed 42]

Every failure is printed with a curl line that reproduces it. Last line:
`RESULT cases=<n> operations=<n> seconds=<s> cases_per_second=<x> failures=<n> errors=<n>`;
the exit status is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.migrate import upgrade
from bench.support import fresh_database, postgres_server
from tests.conftest import FAST_CTCT, build_settings
from tests.fuzzing import fuzz, prepare_database, sandboxed_app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=100, help="per operation and phase")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (random if unset)")
    args = parser.parse_args()
    with postgres_server() as server, fresh_database(server, "bench_fuzz") as database_url:
        upgrade(database_url)
        key = asyncio.run(prepare_database(database_url))
        app = sandboxed_app(build_settings(database_url, ctct=FAST_CTCT))
        report = fuzz(
            app,
            headers={"Authorization": f"Bearer {key}"},
            max_examples=args.max_examples,
            seed=args.seed,
            deterministic=False,
        )
    for line in report.failures + report.errors:
        print(line)
    for label in report.mostly_rejected():
        sent, refused = report.positive[label]
        print(f"schema looser than validation: {label}: {refused} of {sent} valid cases got 400")
    print(report.summary())
    rate = report.cases / report.seconds if report.seconds else 0.0
    print(
        f"RESULT cases={report.cases} operations={len(report.operations)} "
        f"seconds={report.seconds:.1f} cases_per_second={rate:.1f} "
        f"failures={len(report.failures)} errors={len(report.errors)}"
    )
    return 1 if report.failures or report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
