"""The module the Celery CLI points at: ``celery -A workers.main ...``."""

from workers.celery_app import create_worker_app

celery_app = create_worker_app()
