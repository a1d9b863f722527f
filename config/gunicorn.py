"""Gunicorn settings for the web process: PORT and WEB_CONCURRENCY, as Heroku sets them."""

from typing import Any

from config.settings import load_settings

_settings = load_settings()

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency
worker_class = "gthread"
threads = _settings.web_threads
# Heroku sends SIGTERM, then SIGKILL 30 s later: finish in-flight requests well before that.
graceful_timeout = 20
timeout = 30
keepalive = 5
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = "*"
# gunicorn's control socket lives at one path per user, shared by every master on the machine.
control_socket_disable = True


def child_exit(server: Any, worker: Any) -> None:
    """prometheus-client's multiprocess mode: a dead worker's live gauges stop counting."""
    if _settings.metrics_dir is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
