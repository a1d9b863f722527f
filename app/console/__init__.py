"""The operator console at /console: server-rendered pages over what the database holds.

Its own sign-in (console users with roles, argon2id hashes, lockout), a signed session
cookie scoped to /console, and a CSRF token on every form (Flask-WTF).
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask_wtf.csrf import generate_csrf

from config import Settings


def install_console(app: Flask, settings: Settings) -> None:
    from app.console.views import bp

    app.secret_key = settings.console_secret_key
    app.config.update(
        SESSION_COOKIE_NAME="switchboard_console",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.console_secure_cookies,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.console_session_minutes),
        WTF_CSRF_TIME_LIMIT=settings.console_session_minutes * 60,
    )
    app.jinja_env.globals["csrf_token"] = generate_csrf
    app.register_blueprint(bp)
