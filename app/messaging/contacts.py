"""Finding and creating contacts by phone number, through the blind index only."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.clock import utcnow
from app.domain.ids import new_id
from app.domain.phones import timezone_for
from app.infra.db import insert_ignore_returning
from app.models import Contact
from app.security.crypto import keyring


def find_contact(session: Session, tenant_id: str, e164: str) -> Contact | None:
    indexes = keyring().blind_indexes(e164)
    return session.scalar(
        select(Contact).where(Contact.tenant_id == tenant_id, Contact.phone_index.in_(indexes))
    )


def indexes_of(contact: Contact) -> list[str]:
    """Every index the contact's number may be stored under: its own, and during a
    blind-index re-keying window both keys' (a suppression may still hold the old one)."""
    ring = keyring()
    if ring.blind_previous is None or contact.phone_index.startswith("erased:"):
        return [contact.phone_index]
    return list(dict.fromkeys([contact.phone_index, *ring.blind_indexes(contact.phone)]))


def get_or_create_contact(session: Session, tenant_id: str, e164: str) -> Contact:
    return find_or_create_contact(session, tenant_id, e164)[0]


def find_or_create_contact(session: Session, tenant_id: str, e164: str) -> tuple[Contact, bool]:
    """The contact, and whether this call created it.

    Race-safe: concurrent creators meet on the (tenant, blind index) unique key.
    """
    found = find_contact(session, tenant_id, e164)
    if found is not None:
        return found, False
    created = insert_ignore_returning(
        session,
        Contact,
        {
            "id": new_id("con"),
            "tenant_id": tenant_id,
            "phone": e164,  # the column type encrypts it
            "phone_index": keyring().blind_index(e164),
            "timezone": timezone_for(e164),
            "crm_refs": {},
            "created_at": utcnow(),
        },
        ["tenant_id", "phone_index"],
    )
    if created is not None:
        return created, True
    contact = find_contact(session, tenant_id, e164)  # a concurrent creator won
    assert contact is not None
    return contact, False
