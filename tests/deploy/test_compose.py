"""`docker-compose config` renders the stack from an environment built from `.env.example`:
every setting reaches the api and the worker, and compose stops without a required secret.

Debian's docker-compose (1.29) renders offline; `make test` installs it when run as root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from app.migrate import PROJECT_ROOT
from app.settings import Environment, Settings
from tests.deploy.settings_names import setting_names

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
EXAMPLE = PROJECT_ROOT / ".env.example"
SERVICES = ("migrate", "api", "worker")
REQUIRED = (
    "POSTGRES_PASSWORD",
    "CTCT_TOKEN_URL",
    "CTCT_CLIENT_ID",
    "CTCT_CLIENT_SECRET",
    "CTCT_API_KEY",
    "PROVISION_ENCRYPTION_KEYS",
)
# What an operator fills in where `.env.example` leaves the value empty.
FILLED = {
    "POSTGRES_PASSWORD": "pg-pass-4711",
    "CTCT_CLIENT_ID": "partner-client-4711",
    # Compose must hand `$` (and `=`) to the service untouched.
    "CTCT_CLIENT_SECRET": "s3cr3t$with$$dollars=",
    "CTCT_API_KEY": "api-key-4711",
    "CTCT_PARTNER_ID": "ourpartner4711",
    "PROVISION_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "WEBHOOK_SECRET": "whsec_" + "A" * 32,
    "CURSOR_SECRET": "cursor-signing-key-4711",
    "CONSOLE_SESSION_SECRET": "console-session-key-4711",
    "CONSOLE_TRUSTED_PROXIES": "10.0.0.0/8,192.0.2.7",
    "CONSOLE_PROXY_SIGN_OUT_URL": "/oauth2/sign_out",
}


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found:
        return found
    message = (
        "docker-compose is not installed: `apt-get install docker-compose` (Debian's 1.29 "
        "renders offline; `make test` installs it when run as root)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def example_values() -> dict[str, str]:
    """Every `NAME=value` of `.env.example`, commented-out ones included, empty ones filled."""
    values: dict[str, str] = {}
    for line in EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s?([A-Z][A-Z0-9_]+)=(.*)$", line)
        if match and match[1] not in values:
            values[match[1]] = match[2].strip()
    for name, value in FILLED.items():
        if not values.get(name):
            values[name] = value
    return values


def render(tmp_path: Path, values: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` on a copy of our compose file beside `.env` (None: left out)."""
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    lines = [f"{name}={value}\n" for name, value in values.items() if value is not None]
    (tmp_path / ".env").write_text("".join(lines))
    return subprocess.run(
        [docker_compose(), "config"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def service_environments(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    assert result.returncode == 0, result.stderr
    rendered: dict[str, Any] = yaml.safe_load(result.stdout)
    # `config` writes a literal `$` as `$$`, ready to be read by compose again.
    return {
        name: {key: str(value).replace("$$", "$") for key, value in service["environment"].items()}
        for name, service in rendered["services"].items()
        if name in SERVICES
    }


def settings_from(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a service builds from its environment."""
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


def test_every_setting_in_the_env_file_reaches_the_api_and_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = example_values()
    unfilled = sorted(name for name in setting_names() if not values.get(name))
    assert not unfilled, f"give these a value in FILLED: {unfilled}"
    pinned = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": "postgresql+psycopg://partnergate:pg-pass-4711@postgres:5432/partnergate",
    }

    environments = service_environments(render(tmp_path, dict(values)))

    assert set(environments) == set(SERVICES)
    for service, environment in environments.items():
        for name in sorted(setting_names()):
            expected = pinned.get(name, values[name])
            assert environment.get(name) == expected, f"{service}: {name}"
    settings = settings_from(environments["worker"], monkeypatch)
    assert settings.environment is Environment.PRODUCTION
    assert settings.ctct.client_secret.get_secret_value() == "s3cr3t$with$$dollars="
    assert settings.ctct.partner_id == "ourpartner4711"
    assert settings.webhook.ctct_jwks_url == values["WEBHOOK_CTCT_JWKS_URL"]
    assert settings.audit.schedule == values["AUDIT_SCHEDULE"]


def test_settings_left_empty_in_the_env_file_arrive_empty_and_mean_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values: dict[str, str | None] = {
        **example_values(),
        "CTCT_PARTNER_ID": "",
        "WEBHOOK_CTCT_JWKS_URL": "",
        "CTCT_RATE_PER_SECOND": "",
        "CTCT_BASE_URL": "",
    }

    environment = service_environments(render(tmp_path, values))["api"]

    assert environment["CTCT_PARTNER_ID"] == ""
    settings = settings_from(environment, monkeypatch)
    assert settings.ctct.partner_id is None
    assert settings.webhook.ctct_jwks_url is None
    assert settings.ctct.rate_per_second == 4.0
    assert settings.ctct.base_url == "https://api.cc.email/v3"


@pytest.mark.parametrize("name", REQUIRED)
@pytest.mark.parametrize("how", ["missing", "empty"])
def test_compose_stops_without_a_required_secret(tmp_path: Path, name: str, how: str) -> None:
    values: dict[str, str | None] = {**example_values(), name: None if how == "missing" else ""}

    result = render(tmp_path, values)

    assert result.returncode != 0
    assert f"set {name} in .env" in result.stderr


def test_the_services_check_their_health_and_stop_gracefully(tmp_path: Path) -> None:
    result = render(tmp_path, dict(example_values()))
    services = yaml.safe_load(result.stdout)["services"]

    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(services["worker"]["healthcheck"]["test"])
    assert services["migrate"]["healthcheck"]["test"] == ["NONE"]
    for name in ("api", "worker"):
        assert services[name]["read_only"] is True
        assert services[name]["stop_grace_period"]
