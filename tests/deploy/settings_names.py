"""The environment variable name of every setting, from the Settings model itself."""

from __future__ import annotations

from pydantic import BaseModel

from app.settings import Settings


def setting_names() -> set[str]:
    """`GROUP_FIELD` for a field of a group, `FIELD` for a top-level one."""
    names = set()
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.update(f"{name}_{inner}".upper() for inner in annotation.model_fields)
        else:
            names.add(name.upper())
    return names
