"""Without Chromium the browser tests skip on a developer's machine and fail in CI."""

from __future__ import annotations

import pytest

from tests.console.conftest import require_chromium


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHROMIUM_PATH", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)


@pytest.mark.usefixtures("no_chromium")
def test_ci_fails_when_chromium_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")

    with pytest.raises(pytest.fail.Exception, match="Chromium is not installed"):
        require_chromium()


@pytest.mark.usefixtures("no_chromium")
def test_a_developer_machine_skips_when_chromium_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)

    with pytest.raises(pytest.skip.Exception):
        require_chromium()


def test_chromium_path_may_be_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMIUM_PATH", "/opt/chromium/chrome")

    assert require_chromium() == "/opt/chromium/chrome"
