"""Running the `partnergate` command in a test: the environment a shell would give it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TEST_FERNET_KEY, credentials_env


def cli_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str, sandbox_url: str
) -> None:
    """Settings from the environment only (no `.env`): the test database, the sandbox as CTCT."""
    monkeypatch.chdir(tmp_path)
    values = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "PROVISION_ENCRYPTION_KEYS": TEST_FERNET_KEY,
        "CTCT_BASE_URL": f"{sandbox_url}/v3",
        "CTCT_TOKEN_URL": f"{sandbox_url}/oauth2/token",
        "CTCT_RATE_PER_SECOND": "1000",
        "CTCT_DAILY_QUOTA": "100000",
        "CTCT_INTERACTIVE_RESERVE": "0",
        "CTCT_RETRY_RESERVE": "0",
        "CTCT_TIMEOUT_SECONDS": "5",
        "LOG_LEVEL": "WARNING",
        **credentials_env(),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
