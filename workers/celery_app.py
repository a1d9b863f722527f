"""The worker-side Celery app: the Flask app's Celery, with tasks and the beat schedule."""

from __future__ import annotations

from celery import Celery

from app import create_app
from workers import quiet_logs
from workers.beat import beat_schedule


def create_worker_app() -> Celery:
    flask_app = create_app()
    settings = flask_app.extensions["switchboard.settings"]
    celery: Celery = flask_app.extensions["celery"]
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    celery.conf.beat_schedule = beat_schedule(settings)
    celery.conf.beat_schedule_filename = str(settings.var_dir / "celerybeat-schedule")
    quiet_logs.install()
    celery.set_default()
    celery.set_current()
    import workers.campaigns
    import workers.crm
    import workers.dispatch
    import workers.maintenance
    import workers.webhooks  # noqa: F401  (registers the tasks)

    return celery
