"""Fixtures for the unit tests: an in-memory SQLite database and a throwaway keyring."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from app.models import Base, ChannelAccount, Contact, Message, Tenant
from app.security import crypto
from app.security.crypto import Keyring, install_keyring

MessageFactory = Callable[..., Message]


@pytest.fixture
def keyring(monkeypatch: pytest.MonkeyPatch) -> Keyring:
    """A fresh process keyring, installed for this test only."""
    ring = Keyring.from_keys((Fernet.generate_key().decode(),), b"x" * 32)
    # Record the current keyring so monkeypatch puts it back at teardown: an
    # in-process app (integration tests) installs its own and must keep it.
    monkeypatch.setattr(crypto, "_keyring", crypto._keyring)
    install_keyring(ring)
    return ring


@pytest.fixture
def engine(keyring: Keyring) -> Iterator[Engine]:
    """An in-memory SQLite database with every table, shared by one connection."""
    made = create_engine("sqlite://", poolclass=StaticPool)
    Base.metadata.create_all(made)
    yield made
    made.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the in-memory database, closed after the test."""
    with Session(engine) as opened:
        yield opened


@pytest.fixture
def make_message(session: Session, keyring: Keyring) -> MessageFactory:
    """Make an outbound message (with its tenant, account and contact) in a given status."""

    def make(status: str = "pending", **fields: object) -> Message:
        tenant = Tenant(name="Unit tenant")
        session.add(tenant)
        session.flush()
        account = ChannelAccount(
            tenant_id=tenant.id, provider="sandbox", channels=["sms"], sender="+12025550199"
        )
        phone = "+12025550100"
        contact = Contact(tenant_id=tenant.id, phone=phone, phone_index=keyring.blind_index(phone))
        session.add_all([account, contact])
        session.flush()
        message = Message(
            tenant_id=tenant.id,
            channel="sms",
            channels=["sms"],
            account_id=account.id,
            contact_id=contact.id,
            body="hello",
            status=status,
            **fields,
        )
        session.add(message)
        session.flush()
        return message

    return make
