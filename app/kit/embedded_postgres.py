"""A real PostgreSQL server under `.data/`, for machines without one (pgserver ships the binaries).

pgserver leaves the postmaster running when our process dies, and re-attaches to it on the next
start; `stop()` shuts it down with the bundled `pg_ctl`, as the data directory's owner.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import warnings
from pathlib import Path
from types import ModuleType

import psycopg
from sqlalchemy.engine import make_url

FAST_BUT_UNSAFE = ("fsync", "synchronous_commit", "full_page_writes")


def _pgserver_module() -> ModuleType:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here.
        warnings.simplefilter("ignore")
        import pgserver

    return pgserver


class EmbeddedPostgres:
    """Starts (or re-attaches to) a server in `datadir` and stops it on request."""

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir.resolve()
        self._uri: str | None = None

    def start(self, *, durable: bool = True) -> str:
        """Start the server; returns a SQLAlchemy URL for its `postgres` database."""
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        server = _pgserver_module().get_server(self.datadir, cleanup_mode=None)
        self._uri = server.get_uri()
        if not durable:
            self._tune_for_tests()
        return self.url("postgres")

    def url(self, database: str) -> str:
        """A SQLAlchemy URL for `database` on this server."""
        if self._uri is None:
            raise RuntimeError("the embedded server is not started")
        parsed = make_url(self._uri).set(drivername="postgresql+psycopg", database=database)
        return parsed.render_as_string(hide_password=False)

    def stop(self) -> None:
        """Stop the postmaster (fast shutdown); a no-op when it is not running."""
        if not (self.datadir / "postmaster.pid").exists():
            return
        pg_ctl = Path(str(_pgserver_module().__file__)).parent / "pginstall" / "bin" / "pg_ctl"
        owner = pwd.getpwuid(self.datadir.stat().st_uid).pw_name
        subprocess.run(
            [str(pg_ctl), "-D", str(self.datadir), "stop", "-m", "fast", "-w"],
            check=False,
            capture_output=True,
            user=owner if os.geteuid() == 0 else None,
            timeout=60,
        )

    def _tune_for_tests(self) -> None:
        conninfo = self.url("postgres").replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for setting in FAST_BUT_UNSAFE:
                conn.execute(f"ALTER SYSTEM SET {setting} = off")
            conn.execute("SELECT pg_reload_conf()")
