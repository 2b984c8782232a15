"""Every table, imported in one place for Alembic and the schema test."""

from app.auth.models import ApiKey
from app.clients.models import Client, StatusEvent, TransferRequest, TransferRequestEvent
from app.ctct.tables import CtctBudget
from app.db import Base
from app.events.models import WebhookDelivery
from app.membership.audit_models import AuditHeldDemotion, AuditRun, AuditSeen
from app.people.models import Person
from app.provisioning.models import ProvisioningRequest

__all__ = [
    "ApiKey",
    "AuditHeldDemotion",
    "AuditRun",
    "AuditSeen",
    "Base",
    "Client",
    "CtctBudget",
    "Person",
    "ProvisioningRequest",
    "StatusEvent",
    "TransferRequest",
    "TransferRequestEvent",
    "WebhookDelivery",
]
