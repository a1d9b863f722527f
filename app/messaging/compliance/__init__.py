"""Compliance: consent, keywords, quiet hours, the policy that decides each send, privacy and
data subjects."""
