"""The ``switchboard`` console script (contract): with --json, each prints one JSON object."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

from flask.testing import FlaskClient
from sqlalchemy import select

from app.infra.db import Database
from app.models import ChannelAccount, WebhookSecret
from app.providers.signing import generate_secret
from tests.support.backends import ROOT, Backend
from tests.support.cli import SWITCHBOARD, run, run_json


def test_tenant_key_account_then_send_with_that_key(backend: Backend, client: FlaskClient) -> None:
    tenant = run_json(
        backend, "tenants create --name Acme --timezone Europe/Paris --quiet-hours 21:00-08:00"
    )
    assert set(tenant) == {"id"} and tenant["id"].startswith("ten_")
    key = run_json(backend, f"keys create --tenant {tenant['id']}")
    assert set(key) == {"id", "key"} and key["key"].startswith("sb_live_")
    account = run_json(
        backend,
        f"accounts create --tenant {tenant['id']} --provider sandbox --channels sms,mms "
        "--sender +12025550199",
    )
    assert account["webhook_url"] == f"https://sb.example.com/webhooks/sandbox/{account['id']}"
    r = client.post(
        "/v1/messages",
        json={"to": "+12025550100", "body": "hi"},
        headers={"Authorization": f"Bearer {key['key']}"},
    )
    assert r.status_code == 202 and r.get_json()["account_id"] == account["id"]


def test_scoped_key_is_limited_to_its_scopes(backend: Backend, client: FlaskClient) -> None:
    tenant = run_json(backend, "tenants create --name Reader")
    key = run_json(backend, f"keys create --tenant {tenant['id']} --scopes messages:read")
    headers = {"Authorization": f"Bearer {key['key']}"}
    assert client.get("/v1/messages", headers=headers).status_code == 200
    assert (
        client.post(
            "/v1/messages", json={"to": "+12025550100", "body": "x"}, headers=headers
        ).status_code
        == 403
    )


def test_standard_account_keeps_its_secret_and_base_url(backend: Backend, db: Database) -> None:
    tenant = run_json(backend, "tenants create --name Std")
    secret = generate_secret()
    account = run_json(
        backend,
        f"accounts create --tenant {tenant['id']} --provider standard --channels rcs,sms "
        f"--sender +12025550199 --base-url http://127.0.0.1:9 --webhook-secret {secret}",
    )
    with db.session() as s:
        stored = s.get(ChannelAccount, account["id"])
        assert stored is not None and stored.channels == ["rcs", "sms"]
        assert json.loads(stored.credentials or "{}") == {
            "base_url": "http://127.0.0.1:9",
            "signing_secret": secret,
        }
        secrets_ = s.scalars(
            select(WebhookSecret.secret).where(WebhookSecret.account_id == stored.id)
        ).all()
    assert secrets_ == [secret]


def test_bad_input_is_refused_with_a_reason(backend: Backend) -> None:
    tenant = run_json(backend, "tenants create --name Bad")
    t = tenant["id"]
    cases = [
        ("tenants create --name x --timezone Mars/Olympus", "time zone"),
        ("tenants create --name x --quiet-hours 9pm-8am", "21:00-08:00"),
        (f"tenants update --tenant {t} --quiet-hours funday_21:00-08:00", "21:00-08:00"),
        (f"tenants update --tenant {t} --opt-out-keywords ,", "single words"),
        ("tenants update --tenant ten_missing --consent-policy opt_in", "no such tenant"),
        (f"rules add --tenant {t} --name r --match keywords --action escalate", "needs"),
        (f"rules add --tenant {t} --name r --match any --action tag", "target"),
        (f"rules remove --tenant {t} --id rul_missing", "no such rule"),
        (f"crm connect --tenant {t} --kind hubspot", "hubspot needs token"),
        (f"crm connect --tenant {t} --kind salesforce --token x", "instance_url"),
        (f"crm connect --tenant {t} --kind webhook --url https://x.example --secret s", "whsec_"),
        (f"crm connect --tenant {t} --kind zoho --token x", "hubspot"),
        ("crm connect --tenant ten_missing --kind hubspot --token x", "no such tenant"),
        ("redrive --syncs --id abc", "sync ids are numbers"),
        ("keys create --tenant ten_missing", "no tenant"),
        (f"keys create --tenant {t} --scopes superuser", "unknown scopes"),
        (f"accounts create --tenant {t} --provider standard --sender x", "--base-url"),
        (
            f"accounts create --tenant {t} --provider sandbox --sender x --channels fax",
            "rcs, mms, sms",
        ),
        (
            f"accounts create --tenant {t} --provider sandbox --sender x --webhook-secret hunter2",
            "whsec_",
        ),
    ]
    # Each case is a process of its own and independent of the others: run them side by side.
    with ThreadPoolExecutor(max_workers=4) as pool:
        procs = list(pool.map(lambda c: run(backend, *c[0].split(), "--json", ok=False), cases))
    for (command, says), proc in zip(cases, procs, strict=True):
        args = command.split()
        assert proc.returncode != 0, args
        assert says in proc.stderr, (args, proc.stderr)
        assert proc.stdout == ""


def test_tenant_policy_and_routing_rules_from_the_cli(backend: Backend) -> None:
    t = run_json(backend, "tenants create --name Policy --consent-policy opt_in")["id"]
    out = run(
        backend,
        *["tenants", "update", "--tenant", t, "--json"],
        *["--quiet-hours", "mon-fri 21:00-08:00; sat,sun 20:00-10:00"],
        *["--urgent-bypasses-quiet-hours", "--opt-out-keywords", "stop,arret"],
        *["--help-reply", "Acme support: 0800 123 456"],
    ).stdout
    view = json.loads(out)
    assert view["quiet_hours"] == "mon-fri 21:00-08:00; sat,sun 20:00-10:00"
    assert view["urgent_bypasses_quiet_hours"] is True and view["consent_policy"] == "opt_in"
    assert view["keywords"]["opt_out"] == ["ARRET", "STOP"]
    assert view["keywords"]["help"] == ["HELP", "INFO"]  # untouched lists keep the defaults
    assert view["auto_replies"]["help"] == "Acme support: 0800 123 456"
    cleared = run_json(backend, f"tenants update --tenant {t} --quiet-hours none")
    assert cleared["quiet_hours"] is None
    rule = json.loads(
        run(
            backend,
            *["rules", "add", "--tenant", t, "--name", "Pricing", "--match", "keywords"],
            *["--values", "pricing,how much", "--action", "escalate", "--target", "sales"],
            "--json",
        ).stdout
    )
    assert rule["values"] == ["pricing", "how much"] and rule["position"] == 1
    second = run_json(
        backend,
        f"rules add --tenant {t} --name NYC --match area_code --values 212,646 "
        "--action assign_owner --target ana",
    )
    assert second["position"] == 2
    listed = run_json(backend, f"rules list --tenant {t}")["rules"]
    assert [r["id"] for r in listed] == [rule["id"], second["id"]]
    assert run_json(backend, f"rules remove --tenant {t} --id {rule['id']}")["removed"] is True
    assert [r["id"] for r in run_json(backend, f"rules list --tenant {t}")["rules"]] == [
        second["id"]
    ]
    assert run_json(backend, f"redrive --syncs --tenant {t} --dry-run") == {
        "dry_run": True,
        "syncs": [],
    }


def test_generated_encryption_key_is_accepted_by_the_settings(backend: Backend) -> None:
    from config import load_settings

    key = run_json(backend, "keys generate")["key"]
    settings = load_settings({"ENCRYPTION_KEYS": key, "SWITCHBOARD_VAR_DIR": str(backend.var_dir)})
    assert settings.encryption_keys == (key,)


def test_db_upgrade_is_idempotent(backend: Backend) -> None:
    assert run_json(backend, "db upgrade") == {"status": "ok"}


def test_bad_configuration_is_a_clear_error(backend: Backend) -> None:
    env = {**backend.process_env(), "DATABASE_URL": "mysql://x", "PORT": "5000"}
    proc = subprocess.run(
        [SWITCHBOARD, "tenants", "create", "--name", "x"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "DATABASE_URL" in proc.stderr and "Traceback" not in proc.stderr


def test_flower_refuses_to_start_without_basic_auth(backend: Backend) -> None:
    proc = run(backend, "flower", ok=False)
    assert proc.returncode != 0 and "FLOWER_BASIC_AUTH" in proc.stderr


def test_schema_command_prints_the_published_schema(backend: Backend) -> None:
    printed = run(backend, "schema").stdout
    assert printed == (ROOT / "schemas" / "canonical-event.v1.json").read_text()


def test_a_twilio_account_stores_its_credentials_encrypted(backend: Backend, db: Database) -> None:
    tenant = run_json(backend, "tenants create --name Tw")["id"]
    sid = "AC" + "1" * 32
    account = run_json(
        backend,
        f"accounts create --tenant {tenant} --provider twilio --channels sms,mms "
        f"--sender +12025550199 --account-sid {sid} --auth-token tok-secret-value "
        "--base-url http://127.0.0.1:4010",
    )
    assert account["webhook_url"] == f"https://sb.example.com/webhooks/twilio/{account['id']}"
    with db.session() as s:
        stored = s.get(ChannelAccount, account["id"])
        assert stored is not None and stored.provider == "twilio"
        assert json.loads(stored.credentials or "{}") == {
            "account_sid": sid,
            "auth_token": "tok-secret-value",
            "base_url": "http://127.0.0.1:4010",
        }
        # Twilio signs with the Auth Token: no whsec_ secret is made for it.
        assert (
            s.scalars(select(WebhookSecret).where(WebhookSecret.account_id == stored.id)).all()
            == []
        )
    with db.engine.connect() as conn:
        from sqlalchemy import text

        raw = conn.execute(
            text("SELECT credentials FROM channel_accounts WHERE id = :i"), {"i": account["id"]}
        ).scalar()
    assert "tok-secret-value" not in raw and sid not in raw


def test_a_twilio_account_without_its_sid_and_token_is_refused(backend: Backend) -> None:
    tenant = run_json(backend, "tenants create --name Tw2")["id"]
    for extra, says in (
        ("", "--account-sid and --auth-token"),
        ("--account-sid XY123 --auth-token t", "AC followed by 32 hex"),
        (f"--account-sid AC{'1' * 32} --auth-token t --base-url ftp://x", "--base-url"),
    ):
        command = f"accounts create --tenant {tenant} --provider twilio --sender +1202555 {extra}"
        proc = run(backend, *command.split(), "--json", ok=False)
        assert proc.returncode != 0 and says in proc.stderr and proc.stdout == ""


def test_a_tenants_dispatch_weight_is_set_and_checked(backend: Backend) -> None:
    tenant = run_json(backend, "tenants create --name Heavy --dispatch-weight 3")
    view = run_json(backend, f"tenants update --tenant {tenant['id']} --dispatch-weight 5")
    assert view["dispatch_weight"] == 5
    refused = run(
        backend, "tenants", "update", "--tenant", tenant["id"], "--dispatch-weight", "0", ok=False
    )
    assert refused.returncode == 2 and "--dispatch-weight" in refused.stderr
    unchanged = run_json(backend, f"tenants update --tenant {tenant['id']}")
    assert unchanged["dispatch_weight"] == 5
