"""A second domain on the same engine: notes shared within an organisation.

Everything a domain needs, and nothing of the chat: its tables (``models/``), its
queries and mutations (``resolvers/``), and this declaration. Serve it with

    python -m app --domain examples.notes:NOTES serve
"""

from app.domain import Claims, DomainConfig
from examples.notes.models.org import Org

NOTES = DomainConfig(
    tenant=Org,
    models=("examples.notes.models",),
    resolvers=("examples.notes.resolvers",),
    # Tokens name the member as "uid" and the organisation as "org".
    principal=Claims(user="uid", tenant="org"),
)
