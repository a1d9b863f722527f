"""The OAuth 2.0 token endpoint (client credentials) and token revocation (RFC 7009).

Both speak OAuth's own form-encoded requests and JSON errors (RFC 6749 section 5.2:
``{"error": "invalid_client", ...}``), as OAuth clients expect; Authlib does the protocol.
A client authenticates with HTTP Basic or with ``client_id``/``client_secret`` in the form.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc7009 import RevocationEndpoint
from flask import Blueprint, Flask, current_app

from app.api.session import request_session
from app.security.api_keys import KNOWN_SCOPES
from app.security.oauth import (
    Client,
    InvalidToken,
    TokenClaims,
    TokenGenerator,
    decode_token,
    find_client,
    revoke_token,
)
from config import Settings

bp = Blueprint("oauth", __name__, url_prefix="/oauth")


class CredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class _Presented:
    """A token presented for revocation, as Authlib's endpoint expects it."""

    def __init__(self, claims: TokenClaims) -> None:
        self.claims = claims

    def check_client(self, client: Client) -> bool:
        return bool(client.get_client_id() == self.claims.client_id)


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Presented | None:
        settings: Settings = current_app.extensions["switchboard.settings"]
        try:
            claims = decode_token(
                token_string,
                settings.public_base_url,
                settings.oauth_token_secret,
                check_expiry=False,
            )
        except InvalidToken:
            return None  # RFC 7009: an unknown token is answered 200 all the same
        return _Presented(claims)

    def revoke_token(self, token: _Presented, request: Any) -> None:
        session = request_session()
        revoke_token(session, token.claims, actor=f"client:{token.claims.client_id}")
        session.commit()
        current_app.extensions["switchboard.key_cache"].forget(token.claims.jti)


def install_oauth(app: Flask, settings: Settings) -> None:
    app.config["OAUTH2_SCOPES_SUPPORTED"] = sorted(KNOWN_SCOPES)
    server = AuthorizationServer(
        app,
        query_client=lambda cid: find_client(request_session(), cid),
        # The tokens are self-contained JWTs: nothing to store (revocation lists their jti).
        save_token=lambda _token, _request: None,
    )
    server.register_grant(CredentialsGrant)
    server.register_token_generator(
        "client_credentials",
        TokenGenerator(
            settings.public_base_url, settings.oauth_token_secret, settings.oauth_token_seconds
        ),
    )
    server.register_endpoint(Revocation)
    app.extensions["switchboard.oauth"] = server
    app.register_blueprint(bp)


def _server() -> AuthorizationServer:
    return current_app.extensions["switchboard.oauth"]


@bp.post("/token")
def token() -> Any:
    """``grant_type=client_credentials`` [``&scope=...``]: a short-lived bearer token."""
    return _server().create_token_response()


@bp.post("/revoke")
def revoke() -> Any:
    """``token=...``: that token stops working (200 whether or not it was known)."""
    return _server().create_endpoint_response(Revocation.ENDPOINT_NAME)
