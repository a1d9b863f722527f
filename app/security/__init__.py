"""Encryption at rest, blind indexes, API keys and webhook signatures."""
