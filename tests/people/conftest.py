"""People tests hash with argon2id at its lowest cost, as the console tests do."""

from __future__ import annotations

from tests.console.conftest import cheap_password_hashes

__all__ = ["cheap_password_hashes"]
