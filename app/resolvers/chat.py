"""The chat domain, as the engine sees it: where its tables and functions are, who the
principal is, what revokes a token, where files go, what runs beside the engine."""

from __future__ import annotations

from app.demo import banner
from app.domain import Claims, DomainConfig, TokenEpochs
from app.resolvers.presence import PresenceTracker
from app.schema.models.file import File
from app.schema.models.user import User
from app.schema.models.workspace import Workspace
from app.services import Services


def presence(services: Services) -> PresenceTracker:
    return PresenceTracker(services, ttl_s=services.settings.presence_ttl_s)


CHAT = DomainConfig(
    tenant=Workspace,
    models=("app.schema.models",),
    resolvers=("app.resolvers",),
    principal=Claims(tenant="ws"),
    epochs=TokenEpochs(User, "token_epoch"),
    files=File,
    connection_hooks=presence,
    demo=banner,
)
