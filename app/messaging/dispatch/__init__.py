"""Dispatch: batches claimed from a lane, the policy asked again, sends, and their outcomes."""
