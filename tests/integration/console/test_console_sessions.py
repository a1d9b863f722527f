"""Console sessions end on the server: a cookie copied before sign-out, a disable or a password
change no longer opens the console. And a crafted ``next`` never turns a correct sign-in into
an error page."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.infra.db import Database
from app.models import ConsoleAction
from tests.support.console import csrf_of, make_user

COOKIE = "switchboard_console"


def login(client: FlaskClient, username: str, password: str, next_: str = "") -> str:
    """Sign in; the redirect's Location."""
    token = csrf_of(client.get("/console/login").get_data(as_text=True))
    r = client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": token, "next": next_},
    )
    assert r.status_code == 302, r.get_data(as_text=True)
    return r.headers["Location"]


def cookie_of(client: FlaskClient) -> str:
    found = client.get_cookie(COOKIE, path="/console")
    assert found is not None
    return found.value


def replay(app: Flask, cookie: str) -> int:
    """A fresh browser presenting an old cookie: the status of the overview."""
    other = app.test_client()
    other.set_cookie(COOKIE, cookie, path="/console")
    return other.get("/console/").status_code


def signed_in(app: Flask, db: Database) -> tuple[FlaskClient, str, str, str]:
    client = app.test_client()
    username, password = make_user(db, "operator")
    login(client, username, password)
    assert client.get("/console/").status_code == 200
    return client, username, password, cookie_of(client)


def test_sign_out_ends_the_session_a_copied_cookie_held(app: Flask, db: Database) -> None:
    client, _username, _password, copied = signed_in(app, db)
    assert replay(app, copied) == 200  # a copy works while the session lives
    page = client.get("/console/").get_data(as_text=True)
    r = client.post("/console/logout", data={"csrf_token": csrf_of(page)})
    assert r.status_code == 302
    assert replay(app, copied) == 302  # to the sign-in page: the session is over
    with db.session() as s:
        assert s.scalar(select(ConsoleAction.id).where(ConsoleAction.action == "logout"))


def test_disabling_a_user_ends_every_session_even_once_enabled_again(
    app: Flask, db: Database
) -> None:
    from app.security.console_users import set_disabled

    _client, username, password, copied = signed_in(app, db)
    with db.session() as s:
        set_disabled(s, username, True)
        s.commit()
    with db.session() as s:
        set_disabled(s, username, False)
        s.commit()
    assert replay(app, copied) == 302
    fresh = app.test_client()
    login(fresh, username, password)  # signing in again works
    assert fresh.get("/console/").status_code == 200


def test_a_password_change_ends_every_session(app: Flask, db: Database) -> None:
    client, username, password, copied = signed_in(app, db)
    page = client.get("/console/password").get_data(as_text=True)
    new = "another long password"
    wrong = client.post(
        "/console/password",
        data={"current": "not it", "new": new, "again": new, "csrf_token": csrf_of(page)},
    )
    assert wrong.status_code == 422 and "current password is wrong" in wrong.get_data(as_text=True)
    assert replay(app, copied) == 200  # nothing changed
    page = client.get("/console/password").get_data(as_text=True)
    r = client.post(
        "/console/password",
        data={"current": password, "new": new, "again": new, "csrf_token": csrf_of(page)},
    )
    assert r.status_code == 302 and "/console/login" in r.headers["Location"]
    assert replay(app, copied) == 302
    assert client.get("/console/").status_code == 302  # this browser signs in again too
    login(client, username, new)
    assert client.get("/console/").status_code == 200


def test_the_cli_sets_a_password_and_ends_every_session(app: Flask, db: Database) -> None:
    from app.security.console_users import set_password

    _client, username, _password, copied = signed_in(app, db)
    with db.session() as s:
        set_password(s, username, "set by an admin today", actor="cli")
        s.commit()
    assert replay(app, copied) == 302


def test_a_cookie_from_before_this_release_opens_nothing(app: Flask, db: Database) -> None:
    """A session signed without an epoch (or with a forged one) is no session."""
    client, _username, _password, _copied = signed_in(app, db)
    with client.session_transaction(path="/console/") as sess:
        sess.pop("epoch")
    assert client.get("/console/").status_code == 302


@pytest.mark.parametrize(
    "next_",
    [
        "/console/\r\nX-Injected: 1",
        "/console/\nSet-Cookie: x=1",
        "/console/\x00",
        "/console/ spaced",
        "/console//evil.example",
        "/console/../v1/messages",
        "/console\\@evil.example",
        "/consolation",
        "//evil.example/console",
        "https://evil.example/console",
        "/console/\u00e9",
    ],
)
def test_a_crafted_next_falls_back_to_the_overview(app: Flask, db: Database, next_: str) -> None:
    client = app.test_client()
    username, password = make_user(db, "viewer")
    location = login(client, username, password, next_)
    assert location.endswith("/console/"), location
    assert "\n" not in location and "\r" not in location


@pytest.mark.parametrize("next_", ["/console/messages?status=queued", "/console", "/console/"])
def test_a_plain_next_under_the_console_is_kept(app: Flask, db: Database, next_: str) -> None:
    client = app.test_client()
    username, password = make_user(db, "viewer")
    assert login(client, username, password, next_).endswith(next_)
