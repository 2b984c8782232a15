"""Settings are validated at start and refuse placeholders in production."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from app.settings import Settings

PRODUCTION_READY = {
    "environment": "production",
    "database": {"url": "postgresql://db/partnergate"},
    "ctct": {
        "base_url": "https://api.cc.email/v3",
        "token_url": "https://authz.constantcontact.com/partners/oauth2/default/v1/token",
        "client_id": "partner-client-from-vault",
        "client_secret": "s3cr3t-from-vault",
        "api_key": "k3y-from-vault",
    },
    "provision": {"encryption_keys": ["x" * 44]},
}


def test_production_settings_with_real_values_are_accepted() -> None:
    settings = Settings(_env_file=None, **PRODUCTION_READY)  # type: ignore[arg-type]

    assert not settings.ctct.uses_sandbox


def test_production_refuses_the_sandbox_and_placeholder_secrets() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(
            _env_file=None,
            environment="production",
            provision={"encryption_keys": ["x" * 44]},  # type: ignore[arg-type]
        )

    message = str(caught.value)
    assert "CTCT_BASE_URL points at the sandbox" in message
    assert "CTCT_CLIENT_SECRET is empty or a placeholder" in message
    assert "DATABASE_URL is unset" in message


def test_environment_variables_fill_nested_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTCT_RATE_PER_SECOND", "2.5")
    monkeypatch.setenv("MEMBERSHIP_TTL", "15m")
    monkeypatch.setenv("PROVISION_MAX_AGE", "2d")
    monkeypatch.setenv("WEBHOOK_URLS", "https://a.example/hook, https://b.example/hook")

    settings = Settings(_env_file=None)

    assert settings.ctct.rate_per_second == 2.5
    assert settings.membership.ttl == timedelta(minutes=15)
    assert settings.provision.max_age == timedelta(days=2)
    assert settings.webhook.urls == ["https://a.example/hook", "https://b.example/hook"]


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    settings = Settings(_env_file=None, **PRODUCTION_READY)  # type: ignore[arg-type]

    assert "s3cr3t-from-vault" not in repr(settings)
    assert "k3y-from-vault" not in str(settings.model_dump())


def test_outside_development_an_encryption_key_is_required() -> None:
    with pytest.raises(ValidationError, match="PROVISION_ENCRYPTION_KEYS is empty"):
        Settings(_env_file=None, environment="test")

    assert Settings(_env_file=None, environment="development").provision.encryption_keys == []


def test_production_refuses_a_placeholder_console_session_secret() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(
            _env_file=None,
            **PRODUCTION_READY,  # type: ignore[arg-type]
            console={"session_secret": "change-me"},
        )

    assert "CONSOLE_SESSION_SECRET is empty or a placeholder" in str(caught.value)


def test_console_proxy_mode_needs_its_trusted_proxies() -> None:
    with pytest.raises(ValidationError, match="CONSOLE_TRUSTED_PROXIES"):
        Settings(_env_file=None, console={"auth": "proxy"})  # type: ignore[arg-type]
