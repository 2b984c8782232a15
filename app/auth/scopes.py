"""The scopes an API key can carry (DESIGN.md §1)."""

from __future__ import annotations

import enum


class Scope(enum.StrEnum):
    ACCOUNTS_PROVISION = "accounts:provision"
    ACCESS_CHECK = "access:check"
    CLIENTS_REGISTER = "clients:register"
    CLIENTS_READ = "clients:read"
    CLIENTS_DECIDE = "clients:decide"
    AUDITS_RUN = "audits:run"


ALL_SCOPES = frozenset(Scope)


def parse_scopes(raw: str) -> list[Scope]:
    """Parse `a,b,c` into scopes; raises ValueError naming any unknown scope."""
    names = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = sorted({name for name in names if name not in {s.value for s in Scope}})
    if unknown:
        known = ", ".join(s.value for s in Scope)
        raise ValueError(f"unknown scope(s): {', '.join(unknown)} (known: {known})")
    if not names:
        raise ValueError("at least one scope is required")
    return sorted({Scope(name) for name in names})
