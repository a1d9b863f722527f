"""Receipts: provider callbacks stored in the inbox, then drained in batches."""
