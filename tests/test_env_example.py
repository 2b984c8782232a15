"""`.env.example` documents every setting, each with a comment, and parses as valid settings."""

from __future__ import annotations

import re

from pydantic import BaseModel

from app.migrate import PROJECT_ROOT
from app.settings import Settings

EXAMPLE = PROJECT_ROOT / ".env.example"


def _setting_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.update(f"{name}_{inner}".upper() for inner in annotation.model_fields)
        else:
            names.add(name.upper())
    return names


def _documented() -> dict[str, str]:
    """Setting name -> the comment line right above its first mention."""
    lines = EXAMPLE.read_text().splitlines()
    found: dict[str, str] = {}
    for index, line in enumerate(lines):
        match = re.match(r"^#?\s?([A-Z][A-Z0-9_]+)=", line)
        if match and match[1] not in found:
            above = next(
                (
                    lines[i]
                    for i in range(index - 1, -1, -1)
                    if not re.match(r"^#?\s?[A-Z_]+=", lines[i])
                ),
                "",
            )
            found[match[1]] = above
    return found


def test_every_setting_is_listed_with_a_comment() -> None:
    documented = _documented()

    missing = _setting_names() - documented.keys()
    assert not missing, f".env.example lacks {sorted(missing)}"
    uncommented = [name for name, comment in documented.items() if not comment.startswith("# ")]
    assert not uncommented


def test_the_example_values_are_valid_settings() -> None:
    Settings(_env_file=str(EXAMPLE))
