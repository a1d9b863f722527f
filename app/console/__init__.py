"""The operator console at /console: server-rendered pages over what the database holds.

Its own sign-in (console users with roles, argon2id hashes, lockout), a signed session
cookie scoped to /console, and a CSRF token on every form (Flask-WTF).
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf

from config import Settings


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened on the console's paths only.

    The cookie's path is /console, so no other request carries it; opening it anyway
    (building the signer) cost every API request and webhook about 0.1 ms of CPU.
    Elsewhere the session is Flask's null session, which is never saved."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path != "/console" and not request.path.startswith("/console/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


def install_console(app: Flask, settings: Settings) -> None:
    from app.console import campaigns  # noqa: F401  (its pages join the blueprint)
    from app.console.views import bp

    app.secret_key = settings.console_secret_key
    app.session_interface = ConsoleSessions()
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
