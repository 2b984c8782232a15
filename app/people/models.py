"""The people who may use the console, and what each may do there."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class Role(enum.StrEnum):
    """viewer sees; operator also decides; admin also manages provisioning and deliveries."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what `needed` may."""
        order = list(Role)
        return order.index(self) >= order.index(needed)


_ROLES = ", ".join(f"'{role.value}'" for role in Role)


class Person(Base):
    """One person; disabled people keep their row (their email stays in the history)."""

    __tablename__ = "person"
    __table_args__ = (CheckConstraint(f"role IN ({_ROLES})", name="role"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # Stored lowercased: the sign-on proxy and the sign-in form may differ in case.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_sign_in_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]

    @property
    def active(self) -> bool:
        return self.disabled_at is None
