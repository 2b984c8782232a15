"""Configuration: one Settings object, grouped by concern, built once at start and injected.

Environment variable names are the group name and the field name joined by `_`, e.g.
`CTCT_RATE_PER_SECOND` sets `settings.ctct.rate_per_second`. `.env.example` lists them all.
An empty value (`CTCT_PARTNER_ID=`) means "unset", from the environment and from `.env` alike:
compose, Kubernetes and env files write empty strings for settings nobody filled in.
"""

from __future__ import annotations

import enum
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SANDBOX_BASE_URL = "http://sandbox.invalid/v3"
PLACEHOLDER_MARKERS = ("change-me", "changeme", "placeholder", "sandbox-")


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def _parse_duration(value: object) -> object:
    """Accept `90`, `90s`, `15m`, `24h`, `3d` (and anything pydantic takes for a timedelta)."""
    if isinstance(value, str):
        match = _DURATION_PATTERN.match(value.lower())
        if match:
            return timedelta(seconds=float(match[1]) * _DURATION_UNITS[match[2]])
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class UnaffiliatedAccess(enum.StrEnum):
    DENY = "deny"
    ALLOW = "allow"


class DatabaseSettings(BaseModel):
    url: str | None = None
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    # How long a request waits for a free connection before it is answered 503 (busy).
    pool_timeout: float = Field(default=10.0, gt=0)


class CtctSettings(BaseModel):
    base_url: str = SANDBOX_BASE_URL
    token_url: str = "http://sandbox.invalid/oauth2/token"
    client_id: str = "sandbox-partner-client"
    client_secret: SecretStr = SecretStr("sandbox-partner-secret")
    api_key: SecretStr = SecretStr("sandbox-api-key")
    partner_id: str | None = None
    rate_per_second: float = Field(default=4.0, gt=0)
    # Calls are paced at rate / (1 + pacing_slack): the margin for arrival jitter at CTCT.
    pacing_slack: float = Field(default=0.015, ge=0, le=1)
    daily_quota: int = Field(default=10_000, gt=0)
    interactive_reserve: int = Field(default=1_000, ge=0)
    # Calls per day the audit (background) may not spend, kept for retries and reconciliation.
    retry_reserve: int = Field(default=1_000, ge=0)
    timeout_seconds: float = Field(default=10.0, gt=0)
    read_retries: int = Field(default=3, ge=0)
    # `ctct.quota_low` is sent (once per UTC day) when this few calls are left today; 0: never.
    quota_low_threshold: int = Field(default=1_000, ge=0)

    @property
    def uses_sandbox(self) -> bool:
        return self.base_url == SANDBOX_BASE_URL


class ProvisionSettings(BaseModel):
    max_age: Duration = timedelta(days=3)
    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_cap_seconds: float = Field(default=300.0, gt=0)
    # How long a claimed request is ours to send; a sender silent past it is presumed gone.
    lease_seconds: float = Field(default=90.0, gt=0)
    # How long an API call waits for the call budget, or for a concurrent same-key request.
    wait_seconds: float = Field(default=5.0, gt=0)
    worker_concurrency: int = Field(default=10, ge=1)
    # How often an idle worker looks for jobs that became due (new jobs arrive by NOTIFY).
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    # Reads of the partner list for unknown outcomes start at least this far apart, and this
    # long after the first unknown outcome they answer (so one bad minute shares one read).
    reconcile_interval_seconds: float = Field(default=60.0, gt=0)

    @field_validator("encryption_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class MembershipSettings(BaseModel):
    ttl: Duration = timedelta(hours=24)


class AccessSettings(BaseModel):
    probe_timeout: float = Field(default=2.0, gt=0)
    cache_size: int = Field(default=100_000, ge=0)
    # A stale client is re-probed in the background at most once per this many seconds.
    reprobe_cooldown: float = Field(default=30.0, gt=0)
    # How long `GET /v1/access?login_name=…&consistency=fresh` may spend reading the partner list.
    list_timeout: float = Field(default=10.0, gt=0)


class AuditSettings(BaseModel):
    schedule: str = "17 3 * * *"
    max_demotion_ratio: float = Field(default=0.1, ge=0, le=1)


class WorkerSettings(BaseModel):
    # The worker's own HTTP server: /healthz for the orchestrator, /metrics for Prometheus.
    host: str = "0.0.0.0"  # noqa: S104 - probes and scrapes come from outside the pod
    # 0 takes any free port (the worker logs which), as tests running many workers do.
    port: int = Field(default=8001, ge=0, le=65535)


class ImportSettings(BaseModel):
    # Rows and bytes one import file may have (POST /v1/imports and `partnergate import`).
    max_rows: int = Field(default=100_000, ge=1)
    max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)


class WebhookSettings(BaseModel):
    urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    secret: SecretStr | None = None
    ctct_jwks_url: str | None = None
    # Outgoing deliveries (read by the worker): after failed attempt n the next waits between
    # base and min(cap, base * 4**(n-1)) (jittered); after max_attempts the delivery is `failed`.
    retry_base_seconds: float = Field(default=5.0, gt=0)
    retry_cap_seconds: float = Field(default=3600.0, gt=0)
    max_attempts: int = Field(default=12, ge=1)
    timeout_seconds: float = Field(default=10.0, gt=0)
    # `webhook.delivery_failing` is sent when a subscriber's deliveries fail this many times in a
    # row (once, until one succeeds again).
    failing_after: int = Field(default=5, ge=1)
    # After a subscriber's secret is rotated, deliveries carry a signature with the old one too.
    secret_rotation_grace: Duration = timedelta(hours=24)
    # Incoming CTCT webhooks: the JWS `ts` may be at most this old (or this far ahead).
    ctct_max_age_seconds: float = Field(default=300.0, gt=0)
    ctct_jwks_cache_seconds: float = Field(default=3600.0, gt=0)
    # The request header carrying CTCT's JWS; CTCT's docs lost its name (NOTES Q10).
    ctct_signature_header: str = Field(default="x-ctct-signature", min_length=1)

    @field_validator("urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class ConsoleAuth(enum.StrEnum):
    PASSWORD = "password"
    PROXY = "proxy"


class ConsoleSettings(BaseModel):
    # `password`: people sign in with an argon2-hashed password; `proxy`: the SSO proxy's header.
    auth: ConsoleAuth = ConsoleAuth.PASSWORD
    # Signs session cookies; unset, a key derived like the cursor secret serves.
    session_secret: SecretStr | None = None
    session_ttl: Duration = timedelta(hours=8)
    proxy_header: str = Field(default="X-Forwarded-Email", min_length=1)
    # Peer addresses or networks whose proxy header is believed; nobody's when empty.
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    # Where "Sign out" sends a person in proxy mode (the proxy's own sign-out), if anywhere.
    proxy_sign_out_url: str | None = None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _proxy_mode_needs_a_trusted_proxy(self) -> Self:
        if self.auth is ConsoleAuth.PROXY and not self.trusted_proxies:
            raise ValueError(
                "CONSOLE_AUTH=proxy needs CONSOLE_TRUSTED_PROXIES: the addresses of the "
                "sign-on proxy whose header is believed"
            )
        return self


class Settings(BaseSettings):
    """Every setting of the service; see `.env.example`."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        # One rule for every setting: empty is unset, so the default (or the refusal) applies.
        env_ignore_empty=True,
        case_sensitive=False,
        extra="ignore",
    )

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    idempotency_ttl: Duration = timedelta(hours=24)
    unaffiliated_access: UnaffiliatedAccess = UnaffiliatedAccess.DENY
    sandbox_control: bool = False
    data_dir: Path = Path(".data")
    # Signs list cursors; unset, a key derived from the first encryption key (or the CTCT
    # client secret) serves, which every replica of one deployment shares.
    cursor_secret: SecretStr | None = None
    # The largest request body taken, in bytes; beyond it 413, before parsing or authentication.
    max_body_bytes: int = Field(default=256 * 1024, ge=1)

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    ctct: CtctSettings = Field(default_factory=CtctSettings)
    provision: ProvisionSettings = Field(default_factory=ProvisionSettings)
    membership: MembershipSettings = Field(default_factory=MembershipSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    imports: ImportSettings = Field(default_factory=ImportSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    def cursor_signing_secret(self) -> str:
        """The secret list cursors are signed with: shared by every replica of a deployment."""
        if self.cursor_secret is not None and self.cursor_secret.get_secret_value():
            return self.cursor_secret.get_secret_value()
        if self.provision.encryption_keys:
            return self.provision.encryption_keys[0].get_secret_value()
        return self.ctct.client_secret.get_secret_value()

    def console_signing_secret(self) -> str:
        """The secret console session cookies are signed with (shared by every replica)."""
        configured = self.console.session_secret
        if configured is not None and configured.get_secret_value():
            return configured.get_secret_value()
        return "console-session\x00" + self.cursor_signing_secret()

    @model_validator(mode="after")
    def _refuse_placeholder_secrets_outside_development(self) -> Self:
        if self.environment is Environment.DEVELOPMENT:
            return self
        problems = self._secret_problems()
        if self.environment is Environment.PRODUCTION:
            problems.extend(self._production_problems())
        if problems:
            raise ValueError(f"refusing to start in {self.environment}: " + "; ".join(problems))
        return self

    def _secret_problems(self) -> list[str]:
        """Missing or placeholder secrets: only development runs on the sandbox's own."""
        problems: list[str] = []
        keys = [key.get_secret_value() for key in self.provision.encryption_keys]
        if not keys:
            problems.append(
                "PROVISION_ENCRYPTION_KEYS is empty: client passwords cannot be stored "
                "encrypted (generate one with `partnergate keys fernet`)"
            )
        elif any(_is_placeholder(key) for key in keys):
            problems.append("PROVISION_ENCRYPTION_KEYS is empty or a placeholder")
        required = {
            "CTCT_CLIENT_ID": self.ctct.client_id,
            "CTCT_CLIENT_SECRET": self.ctct.client_secret.get_secret_value(),
            "CTCT_API_KEY": self.ctct.api_key.get_secret_value(),
        }
        optional = {
            "WEBHOOK_SECRET": self.webhook.secret,
            "CURSOR_SECRET": self.cursor_secret,
            "CONSOLE_SESSION_SECRET": self.console.session_secret,
        }
        checked = {
            **required,
            **{name: secret.get_secret_value() for name, secret in optional.items() if secret},
        }
        problems.extend(
            f"{name} is empty or a placeholder"
            for name, value in checked.items()
            if _is_placeholder(value)
        )
        return problems

    def _production_problems(self) -> list[str]:
        problems: list[str] = []
        if self.ctct.uses_sandbox:
            problems.append("CTCT_BASE_URL points at the sandbox")
        if self.database.url is None:
            problems.append("DATABASE_URL is unset")
        if self.sandbox_control:
            problems.append("SANDBOX_CONTROL must be off in production")
        return problems


def _is_placeholder(value: str) -> bool:
    return not value.strip() or any(marker in value.lower() for marker in PLACEHOLDER_MARKERS)
