"""The tables: one module per table, discovered by ``app.schema.registry``; and what this
domain plugs into the engine (``CHAT``), handed to ``create_app`` by the assembly."""

from app.domain import DomainConfig, TokenEpochs
from app.schema.models.file import File
from app.schema.models.user import User

CHAT = DomainConfig(epochs=TokenEpochs(User, "token_epoch"), files=File)
