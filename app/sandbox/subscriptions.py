"""The sandbox's partner webhook subscriptions: per partner, one callback URI per topic."""

from __future__ import annotations

import threading
from dataclasses import dataclass

# topic_id -> (topic_name, topic_description), in CTCT's words where the contract has them.
TOPICS: dict[int, tuple[str, str]] = {
    1: ("Billing Tier Upgrade", "Executes when an account's billing tier is upgraded."),
    2: ("Billing Tier Downgrade", "Executes when an account's billing tier is downgraded."),
    3: ("Account Cancelled", "Executes when an account is cancelled."),
    4: ("Account Disabled", "Executes when an account is disabled."),
}


@dataclass(frozen=True, slots=True)
class SentNotification:
    """One notification the sandbox POSTed to a subscriber (status None: not reached)."""

    partner: str
    topic_id: int
    hook_uri: str
    status: int | None
    test: bool


class SubscriptionBook:
    """Which URI each partner's topics notify, and what was sent (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hooks: dict[tuple[str, int], str] = {}
        self.sent: list[SentNotification] = []

    def put(self, partner: str, topic_id: int, hook_uri: str) -> None:
        """Subscribe `partner` to a topic, or move its URI."""
        with self._lock:
            self._hooks[partner, topic_id] = hook_uri

    def get(self, partner: str, topic_id: int) -> str | None:
        """The URI `partner` subscribed for a topic, if any."""
        with self._lock:
            return self._hooks.get((partner, topic_id))

    def remove(self, partner: str, topic_id: int) -> bool:
        """Unsubscribe; False when there was no subscription."""
        with self._lock:
            return self._hooks.pop((partner, topic_id), None) is not None

    def of(self, partner: str) -> list[tuple[int, str]]:
        """A partner's subscriptions by topic."""
        with self._lock:
            return sorted(
                (topic, uri) for (owner, topic), uri in self._hooks.items() if owner == partner
            )

    def describe(self) -> dict[str, list[dict[str, object]]]:
        """Every subscription and every notification sent, for the control API."""
        with self._lock:
            return {
                "subscriptions": [
                    {"partner": partner, "topic_id": topic, "hook_uri": uri}
                    for (partner, topic), uri in sorted(self._hooks.items())
                ],
                "sent": [
                    {
                        "partner": sent.partner,
                        "topic_id": sent.topic_id,
                        "hook_uri": sent.hook_uri,
                        "status": sent.status,
                        "test": sent.test,
                    }
                    for sent in self.sent
                ],
            }

    def record(self, notification: SentNotification) -> None:
        """Remember a notification sent (the control API and tests read `sent`)."""
        with self._lock:
            self.sent.append(notification)

    def clear(self) -> None:
        """No subscriptions, nothing sent."""
        with self._lock:
            self._hooks.clear()
            self.sent.clear()
