"""``switchboard audit``, ``switchboard clients`` and ``switchboard keys rotate|status``:
the audit chain, OAuth clients, and re-encrypting to the newest key."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from app.cli.base import app_session, emit, json_option, main
from app.cli.ops import keys


@main.group()
def audit() -> None:
    """The tamper-evident audit chain."""


@audit.command("verify")
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's chain.")
@json_option
def audit_verify(tenant_id: str | None, as_json: bool) -> None:
    """Check every chain against its hashes, its head and its signed checkpoints.

    Names each edited, deleted or reordered event and each forged checkpoint; exits 1 when
    any chain does not hold."""
    from app.security import audit as chain

    with app_session() as (session, settings):
        keys_ = chain.public_keys(settings.audit_signing_key, settings.audit_verify_keys)
        reports = chain.verify(session, keys_, tenant_id)
    ok = all(r.ok for r in reports)
    if as_json:
        click.echo(json.dumps({"ok": ok, "chains": [r.as_dict() for r in reports]}))
    else:
        for r in reports:
            state = "holds" if r.ok else "BROKEN"
            click.echo(f"{r.chain}: {state} ({r.events} events, {r.checkpoints} checkpoints)")
            for p in r.problems:
                click.echo(f"  {p.kind} at seq {p.seq}: {p.detail}")
        click.echo("the audit chain holds" if ok else "the audit chain does NOT hold")
    if not ok:
        sys.exit(1)


@audit.command("export")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--tenant", "tenant_id", default=None, help="Only this tenant's chain.")
@json_option
def audit_export(out: Path, tenant_id: str | None, as_json: bool) -> None:
    """Write the chain, its checkpoints, the public keys and a standalone verify.py."""
    from app.security import audit as chain

    with app_session() as (session, settings):
        keys_ = chain.public_keys(settings.audit_signing_key, settings.audit_verify_keys)
        counts = chain.export(session, out, keys_, tenant_id)
    data = {"directory": str(out), **counts}
    emit(
        as_json,
        data,
        f"{counts['events']} events, {counts['checkpoints']} checkpoints in {out}\n"
        f"check it anywhere with: python {out / 'verify.py'} {out}",
    )


@audit.command("checkpoint")
@json_option
def audit_checkpoint(as_json: bool) -> None:
    """Sign every chain's head now (beat does it every AUDIT_CHECKPOINT_INTERVAL)."""
    from app.security import audit as chain

    with app_session() as (session, settings):
        keys_ = chain.public_keys(settings.audit_signing_key, settings.audit_verify_keys)
        result = chain.write_checkpoints(session, settings.audit_signing_key, keys_)
    emit(
        as_json,
        {"signed": result.signed, "refused": result.refused},
        f"signed {len(result.signed)} chain(s)"
        + (
            f"; NOT signed, they do not verify: {', '.join(result.refused)}"
            if result.refused
            else ""
        ),
    )
    if result.refused:
        sys.exit(1)


@audit.command("keygen")
@json_option
def audit_keygen(as_json: bool) -> None:
    """Print a new Ed25519 key for AUDIT_SIGNING_KEY, and its public half for auditors."""
    from app.security.audit import generate_seed

    private, public = generate_seed()
    emit(
        as_json,
        {"signing_key": private, "public_key": public},
        f"AUDIT_SIGNING_KEY={private}\npublic key (for AUDIT_VERIFY_KEYS after a change): {public}",
    )


@main.group()
def clients() -> None:
    """OAuth 2.0 clients (client credentials) of a tenant."""


@clients.command("create")
@click.option("--tenant", "tenant_id", required=True)
@click.option("--name", required=True)
@click.option("--scopes", default="messages:write,messages:read", show_default=True)
@json_option
def clients_create(tenant_id: str, name: str, scopes: str, as_json: bool) -> None:
    """Create a client; its secret is shown only this once."""
    from app.security.oauth import ClientError, create_client

    with app_session() as (session, settings):
        try:
            row, secret = create_client(session, tenant_id, name, scopes, actor="cli")
        except ClientError as exc:
            raise click.ClickException(str(exc)) from None
        data = {
            "client_id": row.id,
            "client_secret": secret,
            "scopes": list(row.scopes),
            "token_url": f"{settings.public_base_url}/oauth/token",
        }
    emit(
        as_json,
        data,
        f"client_id     {data['client_id']}\nclient_secret {secret}\n(shown only this once)\n"
        f"token URL     {data['token_url']}",
    )


@clients.command("revoke")
@click.argument("client_id")
@json_option
def clients_revoke(client_id: str, as_json: bool) -> None:
    """Revoke a client: no new tokens, and its tokens stop working within AUTH_CACHE_SECONDS."""
    from app.security.oauth import ClientError, revoke_client

    with app_session() as (session, settings):
        try:
            row = revoke_client(session, client_id, actor="cli")
        except ClientError as exc:
            raise click.ClickException(str(exc)) from None
        assert row.revoked_at is not None
        data = {
            "client_id": row.id,
            "revoked_at": row.revoked_at.isoformat(),
            "effective_within_seconds": settings.auth_cache_seconds,
        }
    emit(as_json, data, f"client {client_id} revoked")


@clients.command("list")
@click.option("--tenant", "tenant_id", default=None)
@json_option
def clients_list(tenant_id: str | None, as_json: bool) -> None:
    """Clients (never their secrets)."""
    from app.security.oauth import list_clients

    with app_session() as (session, _):
        rows = [
            {
                "client_id": c.id,
                "tenant_id": c.tenant_id,
                "name": c.name,
                "scopes": list(c.scopes),
                "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
            }
            for c in list_clients(session, tenant_id)
        ]
    if as_json:
        click.echo(json.dumps({"clients": rows}))
        return
    for r in rows:
        state = "revoked" if r["revoked_at"] else "live"
        click.echo(f"{r['client_id']}  {r['tenant_id']}  {state:<8} {r['name']}  {r['scopes']}")


@keys.command("rotate")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10000))
@click.option("--restart", is_flag=True, help="Start every column over (else resume).")
@click.option(
    "--blind-index",
    is_flag=True,
    help="Re-key the blind index instead (BLIND_INDEX_PREVIOUS_KEY set: the window is open).",
)
@json_option
def keys_rotate(batch: int, restart: bool, blind_index: bool, as_json: bool) -> None:
    """Re-encrypt every encrypted column to the newest key of ENCRYPTION_KEYS.

    Safe while traffic flows, resumable, and it ends with what each key is still needed
    for: a key no ciphertext needs can be removed from ENCRYPTION_KEYS. With
    --blind-index, move every contact (with its consents and suppressions) to
    BLIND_INDEX_KEY's index, and report what still needs BLIND_INDEX_PREVIOUS_KEY."""
    if blind_index:
        _rekey_blind_index(batch, as_json)
        return
    from app.security import audit as chain
    from app.security import rotation
    from app.security.crypto import keyring

    with app_session() as (session, _):
        ring = keyring()
        results = []
        for target in rotation.encrypted_columns():
            total = rotation.size(session, target)
            with click.progressbar(
                length=total,
                label=f"{target.name:<28}",
                file=sys.stderr,
                show_pos=True,
            ) as bar:
                results.append(
                    rotation.rotate_column(
                        session, ring, target, batch=batch, restart=restart, progress=bar.update
                    )
                )
        usage = rotation.scan(session, ring)
        chain.append(
            session,
            tenant_id=None,
            actor="cli",
            action="keys.rotate",
            target="encryption_key",
            ids=[ring.fingerprints[0]],
            change={
                "rotated": {r.column: r.rotated for r in results},
                "old_key_needed": usage.old_key_needed,
            },
        )
    report = usage.as_dict()
    report["rotated"] = {r.column: r.rotated for r in results}
    _print_usage(as_json, report)


def _rekey_blind_index(batch: int, as_json: bool) -> None:
    from sqlalchemy import func, select

    from app.models import Contact
    from app.security import audit as chain
    from app.security import rotation
    from app.security.crypto import keyring

    with app_session() as (session, _):
        ring = keyring()
        total = session.scalar(select(func.count()).select_from(Contact)) or 0
        try:
            with click.progressbar(
                length=total, label="contacts", file=sys.stderr, show_pos=True
            ) as bar:
                done = rotation.rekey_blind_index(session, ring, batch=batch, progress=bar.update)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        status = rotation.blind_index_status(session, ring)
        rekeyed = {
            "contacts": done.contacts,
            "consents": done.consents,
            "suppressions": done.suppressions,
            "campaign_recipients": done.campaign_recipients,
            "undecryptable": done.undecryptable,
        }
        chain.append(
            session,
            tenant_id=None,
            actor="cli",
            action="keys.rekey_blind_index",
            target="blind_index_key",
            ids=[ring.blind_fingerprint],
            change={"rekeyed": rekeyed, "status": status},
        )
    if as_json:
        click.echo(json.dumps({"rekeyed": rekeyed, "status": status}))
        return
    click.echo(f"re-keyed: {rekeyed}")
    _print_blind(status)


def _print_blind(status: dict[str, object]) -> None:
    click.echo(f"blind index key {status['key']}")
    left = status["contacts_under_previous_key"]
    if left is not None:
        click.echo(f"  contacts still under BLIND_INDEX_PREVIOUS_KEY: {left}")
    other = status["suppressions_under_other_keys"]
    if other:
        click.echo(
            f"  {other} suppression(s) of erased numbers were made under another key: only "
            "that key matches them (keep BLIND_INDEX_PREVIOUS_KEY while you must honour them)"
        )


@keys.command("status")
@json_option
def keys_status(as_json: bool) -> None:
    """What each key of ENCRYPTION_KEYS is still needed for, and what is under another
    blind index key than BLIND_INDEX_KEY (a full scan)."""
    from app.security import rotation
    from app.security.crypto import keyring

    with app_session() as (session, _):
        report = rotation.scan(session, keyring()).as_dict()
        blind = rotation.blind_index_status(session, keyring())
    if as_json:
        click.echo(json.dumps({**report, "blind_index": blind}))
        return
    _print_usage(False, report)
    _print_blind(blind)


def _print_usage(as_json: bool, report: dict[str, object]) -> None:
    if as_json:
        click.echo(json.dumps(report))
        return
    keys_ = report["keys"]
    assert isinstance(keys_, list)
    click.echo(f"keys (newest first): {', '.join(keys_)}")
    columns = report["columns"]
    assert isinstance(columns, dict)
    for name, counts in columns.items():
        click.echo(f"  {name:<28} {counts}")
    if report["undecryptable"]:
        click.echo(f"no configured key opens: {report['undecryptable']}")
    needed = report["old_key_needed"]
    if needed:
        click.echo(f"{needed} value(s) still need an older key: run switchboard keys rotate")
    else:
        removable = report["removable"]
        assert isinstance(removable, list)
        click.echo(
            "no ciphertext needs an older key"
            + (
                f": these can be removed from ENCRYPTION_KEYS: {', '.join(removable)}"
                if removable
                else ""
            )
        )
