"""Every table, imported in one place for Alembic and the schema test."""

from app.audit.models import AuditHeldDemotion, AuditRun, AuditSeen
from app.auth.models import ApiKey
from app.clients.models import Client, StatusEvent, TransferRequest, TransferRequestEvent
from app.ctct.models import CtctBudget
from app.db import Base
from app.provisioning.models import PartnerListRead, ProvisioningRequest
from app.webhooks.models import WebhookDelivery, WebhookEvent

__all__ = [
    "ApiKey",
    "AuditHeldDemotion",
    "AuditRun",
    "AuditSeen",
    "Base",
    "Client",
    "CtctBudget",
    "PartnerListRead",
    "ProvisioningRequest",
    "StatusEvent",
    "TransferRequest",
    "TransferRequestEvent",
    "WebhookDelivery",
    "WebhookEvent",
]
