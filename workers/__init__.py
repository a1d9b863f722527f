"""Celery workers: the app bound to Flask, tasks by concern, and the beat schedule."""
