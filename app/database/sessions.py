"""The ORM session class behind every async session, with the project's listeners.

Listeners go on this subclass rather than on SQLModel's ``Session`` so that sessions a
fork creates for other purposes are not affected.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlmodel import Session

from app import tenancy
from app.dataloaders.recording import record_fallback
from app.live import capture


class AppSession(Session):
    """Tenant-scoped reads and writes, change capture, read recording."""


tenancy.install(AppSession)
capture.install(AppSession)
event.listen(AppSession, "do_orm_execute", record_fallback)
