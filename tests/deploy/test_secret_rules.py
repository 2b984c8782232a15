"""Placeholder and missing secrets are refused in every environment but development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings

REAL_CREDENTIALS = {
    "client_id": "partner-client-from-vault",
    "client_secret": "s3cr3t-from-vault",
    "api_key": "k3y-from-vault",
}
REAL_KEYS = {"encryption_keys": ["A" * 43 + "="]}


def _settings(environment: str, **values: object) -> Settings:
    return Settings(_env_file=None, environment=environment, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize("environment", ["test", "production"])
def test_the_sandbox_credentials_are_refused_outside_development(environment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _settings(
            environment,
            database={"url": "postgresql+psycopg://db/partnergate"},
            provision=REAL_KEYS,
        )

    message = str(caught.value)
    for name in ("CTCT_CLIENT_ID", "CTCT_CLIENT_SECRET", "CTCT_API_KEY"):
        assert f"{name} is empty or a placeholder" in message


@pytest.mark.parametrize(
    ("group", "field", "name"),
    [
        ("ctct", "client_secret", "CTCT_CLIENT_SECRET"),
        ("ctct", "api_key", "CTCT_API_KEY"),
        ("webhook", "secret", "WEBHOOK_SECRET"),
    ],
)
def test_a_change_me_secret_is_refused_in_the_test_environment(
    group: str, field: str, name: str
) -> None:
    values: dict[str, dict[str, object]] = {"ctct": dict(REAL_CREDENTIALS), "provision": REAL_KEYS}
    values.setdefault(group, {})[field] = "change-me"

    with pytest.raises(ValidationError, match=f"{name} is empty or a placeholder"):
        _settings("test", **values)


def test_a_placeholder_cursor_secret_or_encryption_key_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        _settings(
            "test",
            ctct=REAL_CREDENTIALS,
            provision={"encryption_keys": ["changeme"]},
            cursor_secret="placeholder",
        )

    assert "PROVISION_ENCRYPTION_KEYS is empty or a placeholder" in str(caught.value)
    assert "CURSOR_SECRET is empty or a placeholder" in str(caught.value)


def test_the_test_environment_with_real_secrets_may_talk_to_the_sandbox() -> None:
    settings = _settings("test", ctct=REAL_CREDENTIALS, provision=REAL_KEYS, sandbox_control=True)

    assert settings.ctct.uses_sandbox


def test_unset_optional_secrets_are_fine_outside_development() -> None:
    settings = _settings("test", ctct=REAL_CREDENTIALS, provision=REAL_KEYS)

    assert (settings.webhook.secret, settings.cursor_secret) == (None, None)


def test_development_runs_on_the_sandbox_credentials() -> None:
    settings = _settings("development")

    assert settings.ctct.client_secret.get_secret_value() == "sandbox-partner-secret"
