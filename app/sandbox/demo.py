"""Demo accounts for `make run`: ours (one canceled), another partner's, an unaffiliated one."""

from __future__ import annotations

from dataclasses import dataclass

from app.sandbox.accounts import Account
from app.sandbox.partners import NO_PARTNER, OTHER, OURS
from app.sandbox.state import SandboxState


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """A seeded demo account and the user token that opens its `/account/summary`."""

    account: Account
    user_token: str


_DEMO = (
    # (id, login name, organization, partner, billing status, plan)
    ("a07e1lxqqqo0", "demo_bakery", "Sunrise Bakery", OURS, "Trial", None),
    ("a08e1izvh8t9", "demo_florist", "Petal & Stem Florist", OURS, "Open", "GOLD"),
    ("a07e1lwvtuw0", "demo_gym_closed", "Iron Works Gym", OURS, "Canceled", "SILVER"),
    ("a07e1lother1", "other_partner_shop", "Elsewhere Outfitters", OTHER, "Open", "BRONZE"),
    ("a07e1lnopart", "solo_photographer", "Solo Light Studio", NO_PARTNER, "Trial", None),
)


def seed_demo(state: SandboxState) -> list[DemoAccount]:
    """Seed the demo accounts (fixed ids and user tokens `user-<login name>`); return them."""
    seeded = []
    for number, (account_id, login, organization, partner, status, plan) in enumerate(_DEMO):
        account = state.find(account_id) or state.seed_account(
            encoded_account_id=account_id,
            login_name=login,
            organization_name=organization,
            partner=partner,
            billing_status=status,
            plan_type=plan,
            subscriber_count=120 * (number + 1),
            first_name="Demo",
            last_name=organization.split()[0],
        )
        token = state.mint_user_token(account_id, token=f"user-{login}")
        seeded.append(DemoAccount(account, token))
    return seeded


def describe_demo(state: SandboxState, seeded: list[DemoAccount]) -> str:
    """A plain-text table of the partners and the demo accounts, for a terminal."""
    lines = ["Partners (client id / secret / API key / encoded partner id):"]
    for partner in state.partners.values():
        lines.append(
            f"  {partner.key:6} {partner.client_id} / {partner.client_secret} / "
            f"{partner.api_key} / {partner.encoded_partner_id}"
        )
    lines.append("Demo accounts (id, login, partner, billing status, user token):")
    for demo in seeded:
        account = demo.account
        lines.append(
            f"  {account.encoded_account_id}  {account.login_name:20} "
            f"{account.partner or NO_PARTNER:6} {account.billing_status:9} {demo.user_token}"
        )
    return "\n".join(lines)
