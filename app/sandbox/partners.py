"""The partners the sandbox knows: "ours" (partnergate's default settings) and another one."""

from __future__ import annotations

from dataclasses import dataclass

OURS = "ours"
OTHER = "other"
NO_PARTNER = "none"

OUR_ENCODED_PARTNER_ID = "sbxpartner0001"
OTHER_ENCODED_PARTNER_ID = "sbxpartner0002"


@dataclass(frozen=True, slots=True)
class Partner:
    """A CTCT technology partner: its credentials and its public id."""

    key: str
    name: str
    client_id: str
    client_secret: str
    api_key: str
    encoded_partner_id: str

    def to_json(self) -> dict[str, str]:
        """Everything about the partner, credentials included: the sandbox has no secrets."""
        return {
            "key": self.key,
            "name": self.name,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "api_key": self.api_key,
            "encoded_partner_id": self.encoded_partner_id,
        }


# The defaults of app.settings.CtctSettings, so an unconfigured partnergate is "ours".
OUR_PARTNER = Partner(
    key=OURS,
    name="partnergate (ours)",
    client_id="sandbox-partner-client",
    client_secret="sandbox-partner-secret",  # noqa: S106 - the sandbox's published test value
    api_key="sandbox-api-key",
    encoded_partner_id=OUR_ENCODED_PARTNER_ID,
)
OTHER_PARTNER = Partner(
    key=OTHER,
    name="Another technology partner",
    client_id="sandbox-other-client",
    client_secret="sandbox-other-secret",  # noqa: S106 - the sandbox's published test value
    api_key="sandbox-other-api-key",
    encoded_partner_id=OTHER_ENCODED_PARTNER_ID,
)
DEFAULT_PARTNERS = (OUR_PARTNER, OTHER_PARTNER)
