"""The embedded broker: kombu's SQLAlchemy transport on SQLite, polled often enough to feel instant.

kombu's virtual transports sleep ``polling_interval`` seconds (1 s by default)
whenever every queue they consume is empty. The sqla transport hands each
transport option to ``create_engine``, so the interval cannot be passed as an
option; the virtual ``Transport.polling_interval`` class attribute is the
supported knob, and Celery picks a transport class by ``broker_transport``.
A poll is one short SQLite transaction per consumed queue: at 0.1 s an idle
worker on four queues runs about 40 of them a second, on the broker's own file.

Every process of the pipeline opens that file at once when it starts. kombu guards making
the broker's tables and a queue's row with a lock of its own process only: two processes
declaring the same queue on a fresh file both insert it, and the loser's ``IntegrityError``
killed a worker at start (its queue never consumed). The channel here takes the row the
other process made, and the tables another one created.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy.exc import IntegrityError, OperationalError

SCHEME = "sqla+"


class Channel(kombu_sqla.Channel):
    """kombu's channel, safe when several processes start on one broker file."""

    def _open(self) -> Any:
        try:
            return super()._open()  # type: ignore[no-untyped-call]
        except OperationalError as exc:
            if "already exists" not in str(exc):
                raise
            # Another process created the tables between the check and the CREATE.
            return super()._open()  # type: ignore[no-untyped-call]

    def _get_or_create(self, queue: str) -> Any:
        try:
            return super()._get_or_create(queue)  # type: ignore[no-untyped-call]
        except IntegrityError:
            # Another process inserted the queue's row between kombu's check and its commit.
            self.session.rollback()
            found = self.session.query(self.queue_cls).filter(self.queue_cls.name == queue)
            return found.one()


def transport_for(poll_seconds: float) -> type[Any]:
    """A transport class for ``broker_transport`` that polls every ``poll_seconds``."""

    class Transport(kombu_sqla.Transport):
        polling_interval = poll_seconds
        Channel = Channel

    Transport.__qualname__ = Transport.__name__ = f"EmbeddedTransport{poll_seconds:g}"
    return Transport


def celery_broker(broker_url: str, poll_seconds: float) -> tuple[str, type[Any] | None]:
    """The URL and transport class to give Celery: the sqla scheme is dropped, since kombu
    takes a ``transport+`` prefix over an explicit transport."""
    if not broker_url.startswith(SCHEME):
        return broker_url, None
    return broker_url.removeprefix(SCHEME), transport_for(poll_seconds)
