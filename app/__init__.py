"""Switchboard's Flask side: the app factory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask

from config import Settings, load_settings
from config.logging import configure_logging

if TYPE_CHECKING:
    from celery import Celery

    from app.infra.db import Database
    from app.infra.ratelimit import RateLimiter
    from app.infra.wakes import Wakes


@dataclass(frozen=True)
class Core:
    """What every process of Switchboard wires up, web or not."""

    settings: Settings
    db: Database
    celery: Celery
    limiter: RateLimiter
    wakes: Wakes
    outbox: Any


def build_core(settings: Settings) -> Core:
    """Logging, Sentry, the keyring, the database, Celery, the limiter, the wakes, the outbox
    and the session hooks (CRM syncs, metrics): the app without Flask, as the CLI uses it."""
    from app.crm.owed import install_crm_hook
    from app.infra.broker import create_celery
    from app.infra.db import make_database
    from app.infra.outbox import install_outbox
    from app.infra.ratelimit import RedisLimiter, make_limiter
    from app.infra.wakes import Wakes
    from app.observability.metrics import install_metrics_hook
    from app.observability.sentry import init_sentry
    from app.security.crypto import Keyring, install_keyring

    configure_logging(settings.log_level)
    init_sentry(settings)
    install_keyring(
        Keyring.from_keys(
            settings.encryption_keys, settings.blind_index_key, settings.blind_index_previous_key
        )
    )
    db = make_database(settings)
    celery = create_celery(settings)
    limiter = make_limiter(settings.redis_url, settings.broker_keyprefix)
    # The wakes' flags live beside the rate buckets, on the same Redis client (none without).
    wakes = Wakes(
        limiter.client if isinstance(limiter, RedisLimiter) else None,
        settings.broker_keyprefix or "",
    )
    outbox = install_outbox(db, celery, wakes)
    install_crm_hook(db.sessionmaker)
    install_metrics_hook(db.sessionmaker)
    return Core(settings, db, celery, limiter, wakes, outbox)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the web app; ``test_config`` may carry ``settings`` and Flask overrides."""
    from app.api import openapi
    from app.api.errors import register_error_handlers
    from app.api.guards import install_input_guard
    from app.api.routes import (
        admin,
        analytics,
        campaigns,
        consents,
        contacts,
        crm,
        health,
        links,
        messages,
        metrics,
        rules,
        templates,
        webhooks,
    )
    from app.api.routes.oauth import install_oauth
    from app.api.session import close_request_session
    from app.console import install_console
    from app.infra.ttl_cache import TTLCache
    from app.messaging.recovery.stuck import Window
    from app.reports.gauges import DatabaseGauges

    config = dict(test_config or {})
    settings: Settings = config.pop("settings", None) or load_settings()
    core = build_core(settings)
    db, celery, limiter, wakes, outbox = core.db, core.celery, core.limiter, core.wakes, core.outbox

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, JSON_SORT_KEYS=False)
    app.config.update(config)

    app.extensions["switchboard.gauges"] = DatabaseGauges(
        db, Window(settings.stuck_sla), limiter, settings.metrics_cache_seconds
    )
    app.extensions["switchboard.settings"] = settings
    app.extensions["switchboard.db"] = db
    app.extensions["celery"] = celery
    app.extensions["switchboard.wakes"] = wakes
    app.extensions["switchboard.outbox"] = outbox
    app.extensions["switchboard.limiter"] = limiter
    # API keys and their tenants (app.api.auth), for AUTH_CACHE_SECONDS.
    app.extensions["switchboard.key_cache"] = TTLCache(settings.auth_cache_seconds)
    # Channel accounts and their webhook secrets (app.api.routes.webhooks), for
    # ACCOUNT_CACHE_SECONDS.
    app.extensions["switchboard.signer_cache"] = TTLCache(settings.account_cache_seconds)
    celery.flask_app = app

    register_error_handlers(app)
    install_input_guard(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(messages.bp)
    app.register_blueprint(campaigns.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(consents.bp)
    app.register_blueprint(contacts.bp)
    app.register_blueprint(rules.bp)
    app.register_blueprint(crm.bp)
    app.register_blueprint(analytics.bp)
    app.register_blueprint(templates.bp)
    app.register_blueprint(links.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(openapi.bp)
    install_console(app, settings)
    install_oauth(app, settings)
    app.teardown_appcontext(close_request_session)
    return app
