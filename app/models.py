"""Every table, imported in one place for Alembic and the schema test."""

from app.audit.models import AuditHeldDemotion, AuditRun, AuditSeen
from app.auth.models import ApiKey
from app.clients.models import (
    Client,
    PartnerListing,
    StatusEvent,
    TransferRequest,
    TransferRequestEvent,
)
from app.ctct.models import CtctBudget
from app.db import Base
from app.imports.models import ImportJob, ImportRow
from app.people.models import Person
from app.provisioning.models import PartnerListRead, ProvisioningRequest
from app.webhooks.models import WebhookDelivery, WebhookEvent, WebhookSubscriber

__all__ = [
    "ApiKey",
    "AuditHeldDemotion",
    "AuditRun",
    "AuditSeen",
    "Base",
    "Client",
    "CtctBudget",
    "ImportJob",
    "ImportRow",
    "PartnerListRead",
    "PartnerListing",
    "Person",
    "ProvisioningRequest",
    "StatusEvent",
    "TransferRequest",
    "TransferRequestEvent",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSubscriber",
]
