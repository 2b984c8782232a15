"""An empty value means "unset" for every setting: the default applies, required checks still run.

Compose (`${X:-}`), Kubernetes ConfigMaps and `.env` files all produce empty strings for
settings nobody filled in; none of them may turn into a value the service acts on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings
from tests.deploy.settings_names import setting_names


def _clear_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)


def test_every_setting_set_empty_in_the_environment_keeps_its_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear_settings_env(monkeypatch)
    defaults = Settings(_env_file=None).model_dump()
    for name in setting_names():
        monkeypatch.setenv(name, "")

    assert Settings(_env_file=None).model_dump() == defaults


def test_every_setting_set_empty_in_an_env_file_keeps_its_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clear_settings_env(monkeypatch)
    defaults = Settings(_env_file=None).model_dump()
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name}=\n" for name in sorted(setting_names())))

    assert Settings(_env_file=env_file).model_dump() == defaults


def test_an_empty_partner_id_is_no_partner_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTCT_PARTNER_ID", "")

    assert Settings(_env_file=None).ctct.partner_id is None


def test_empty_required_secrets_are_still_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_settings_env(monkeypatch)
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://db/partnergate")
    monkeypatch.setenv("CTCT_BASE_URL", "https://api.cc.email/v3")
    for name in ("CTCT_CLIENT_SECRET", "CTCT_API_KEY", "PROVISION_ENCRYPTION_KEYS"):
        monkeypatch.setenv(name, "")

    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)

    for name in ("CTCT_CLIENT_SECRET", "CTCT_API_KEY", "PROVISION_ENCRYPTION_KEYS"):
        assert f"{name} is empty" in str(caught.value)
