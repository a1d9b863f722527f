"""What no handler may see: a NUL where a caller's string travels to a lookup by key.

A NUL cannot be stored, and the database driver refuses it with an error that is no fault of
the server's; credentials have no use for any other control character either. One guard runs
before every handler and reads, in order:
- the path (message, template and connection ids, provider and account names);
- the query string (filters, cursors);
- on the OAuth endpoints, the ``Authorization`` header and the form (client ids and secrets).

API keys and access tokens need no guard: a key is hashed before its lookup, a token verified.
The console's forms are its own: a sign-in refuses a NUL in a username where it looks the user
up, ids are parsed as ids, and a redirect target that is not a plain path is not followed.

A NUL in the path names nothing: 404. Elsewhere it is a 400 problem (``invalid_characters``,
naming where, or the reason a parameter already has, such as ``bad_cursor``), except on the
OAuth endpoints, which answer in OAuth's own JSON (RFC 6749 section 5.2): 401
``invalid_client`` for a credential, 400 ``invalid_request`` for any other field.

JSON bodies are checked by ``app.api.bodies.check_json_shape``; webhook forms are the provider
module's to verify and parse.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote, unquote_to_bytes

from flask import Flask, Response, json, request

from app.api.errors import Problem

# C0 controls and DEL: no credential holds one.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
OAUTH_PREFIX = "/oauth/"
CREDENTIAL_FIELDS = ("client_id", "client_secret")
# Query parameters whose handlers already name their own reason for a bad value.
QUERY_REASONS = {"cursor": "bad_cursor"}


def has_control(value: str) -> bool:
    return CONTROL.search(value) is not None


class BadInput(Exception):
    """What is wrong and where (a sentence), whether that place holds a credential, and the
    status and reason to answer with off the OAuth endpoints."""

    def __init__(
        self, what: str, credential: bool, status: int = 400, reason: str = "invalid_characters"
    ) -> None:
        super().__init__(what)
        self.what = what
        self.credential = credential
        self.status = status
        self.reason = reason


def basic_credentials(header: str) -> tuple[str, str] | None:
    """The client id and secret of an HTTP Basic header, decoded as RFC 6749 section 2.3.1
    says (base64, UTF-8, then form-url-decoding); None if it is not Basic at all.

    Raises BadInput for a header with a scheme and no credentials (Authlib's own parsing fails
    on it), and for credentials that do not decode or that hold control characters.
    """
    parts = header.split(None, 1)
    if " " in header and len(parts) != 2:
        raise BadInput("the Authorization header names a scheme but no credentials", True)
    if len(parts) != 2 or parts[0].lower() != "basic":
        return None
    try:
        text = base64.b64decode(parts[1]).decode("utf-8")
        client_id, _, secret = text.partition(":")
        client_id, secret = unquote(client_id, errors="strict"), unquote(secret, errors="strict")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        raise BadInput("the Basic credentials are not base64 of UTF-8 text", True) from None
    if has_control(client_id) or has_control(secret):
        raise BadInput("the Basic credentials hold control characters", True)
    return client_id, secret


def find_bad_input() -> None:
    """Raise BadInput for the first place of the request that holds a NUL, or a credential
    that holds any control character."""
    path = request.path
    if "\x00" in path:
        raise BadInput("the path holds a NUL: it names nothing", False, 404, "not_found")
    raw_query = request.query_string
    # Parsed only when it can hold a NUL: the hot paths' requests carry no query at all.
    if b"%00" in raw_query or b"\x00" in raw_query:
        for key, value in request.args.items(multi=True):
            if "\x00" in key or "\x00" in value:
                reason = QUERY_REASONS.get(key, "invalid_characters")
                raise BadInput(f"the query parameter {key!r} holds a NUL", False, 400, reason)
    oauth = path.startswith(OAUTH_PREFIX)
    # An API key or access token elsewhere is hashed or verified, never looked up as sent.
    header = request.headers.get("Authorization") if oauth else None
    if header is not None:
        if has_control(header):
            raise BadInput("the Authorization header holds control characters", True)
        basic_credentials(header)
    if oauth and request.mimetype == "application/x-www-form-urlencoded":
        check_oauth_form(request.get_data(cache=True))


def check_oauth_form(raw: bytes) -> None:
    """Every field of an OAuth form, decoded strictly: Werkzeug drops a form that is not UTF-8
    without a word, which would hide a malformed credential behind a missing grant type."""
    for pair in raw.split(b"&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition(b"=")
        try:
            key = unquote_to_bytes(raw_key.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("a form field's name is not UTF-8", False) from None
        credential = key in CREDENTIAL_FIELDS
        try:
            value = unquote_to_bytes(raw_value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(f"the form field {key!r} is not UTF-8", credential) from None
        if (has_control(value) if credential else "\x00" in value) or "\x00" in key:
            raise BadInput(f"the form field {key!r} holds control characters", credential)


def oauth_error(bad: BadInput) -> Response:
    """OAuth's own error shape (RFC 6749 section 5.2), never problem+json, on /oauth."""
    error, status = ("invalid_client", 401) if bad.credential else ("invalid_request", 400)
    body = {"error": error, "error_description": bad.what}
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="switchboard"'
    return response


def install_input_guard(app: Flask) -> None:
    @app.before_request
    def _refuse_control_characters() -> Response | None:
        try:
            find_bad_input()
        except BadInput as bad:
            if request.path.startswith(OAUTH_PREFIX):
                return oauth_error(bad)
            raise Problem(bad.status, bad.reason, bad.what) from None
        return None
