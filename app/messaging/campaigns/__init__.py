"""Campaigns: one request for a list of recipients; each recipient becomes a message."""
