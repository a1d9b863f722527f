"""Queue names: the three dispatch lanes, and the queues of intake, the CRM and maintenance.

Lanes are separate queues, never per-message priorities, so urgent work is never behind bulk.
"""

from __future__ import annotations


class QueueNames:
    """Every queue Switchboard uses. Lanes are queues, not per-message priorities."""

    URGENT = "dispatch.urgent"
    NORMAL = "dispatch.normal"
    BULK = "dispatch.bulk"
    INTAKE = "intake"
    CRM = "crm"
    MAINTENANCE = "maintenance"

    @classmethod
    def all(cls) -> list[str]:
        return [cls.URGENT, cls.INTAKE, cls.NORMAL, cls.CRM, cls.BULK, cls.MAINTENANCE]

    @classmethod
    def for_priority(cls, priority: str) -> str:
        return {"urgent": cls.URGENT, "normal": cls.NORMAL, "bulk": cls.BULK}[priority]


def lane_for(priority: str) -> str:
    """The dispatch lane of a message's priority (``urgent``, ``normal`` or ``bulk``)."""
    return QueueNames.for_priority(priority)
