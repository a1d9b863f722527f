"""What a task needs from the Flask app it runs in."""

from __future__ import annotations

from celery import Celery
from flask import current_app

from app.infra.db import Database
from app.infra.ratelimit import RateLimiter
from app.infra.wakes import Wakes
from config import Settings


def db() -> Database:
    value: Database = current_app.extensions["switchboard.db"]
    return value


def settings() -> Settings:
    value: Settings = current_app.extensions["switchboard.settings"]
    return value


def celery() -> Celery:
    value: Celery = current_app.extensions["celery"]
    return value


def limiter() -> RateLimiter:
    value: RateLimiter = current_app.extensions["switchboard.limiter"]
    return value


def wakes() -> Wakes:
    value: Wakes = current_app.extensions["switchboard.wakes"]
    return value
