"""Intake: a validated send intent becomes a persisted message and its owed dispatch."""
