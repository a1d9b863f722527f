"""CRM benchmark: writeback at campaign scale, inside each CRM's published limits.

    python scripts/bench/crm.py [--phases hubspot,salesforce,campaign,isolation]
                                [--rate 100] [--seconds 60] [--latency-ms 100] [--campaign 10000]

The whole pipeline runs as the Procfile splits it (gunicorn; intake, dispatch and crm
workers; beat), against fakes that enforce the CRMs' limits and answer each call in
``--latency-ms``:

- hubspot: signed Twilio replies, each from a new number, POSTed at ``--rate`` a second
  for ``--seconds``; HubSpot's fake at 100 calls per 10 s and 5 searches a second. Figures:
  webhook POST to the Communication created (p50/p95/p99), API calls per reply, the share
  of calls refused with 429, and every reply written once.
- salesforce: the same against Salesforce's fake, its daily allowance counted.
- campaign: ``--campaign`` outbound messages reach their final status (written as the
  receipts path writes them); figures: calls per message, and how long after the last
  status the CRM backlog was cleared.
- isolation: urgent sends (POST to the provider's arrival, p50/p95/p99) while HubSpot is
  down and the same flood of replies waits for it.

Baselines, measured in the same run against the same fakes: the one-at-a-time design
(each sync written on its own: the connector with batches of one), its calls per reply
and the time each sync's calls take; and for the isolation phase, urgent sends with the
CRM up and no flood. Targets are printed HIT or MISS beside each figure. Everything it
makes (database, Redis keys) is removed at the end.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys
from pathlib import Path

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import argparse
import contextlib
import os
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
from cryptography.fernet import Fernet

from app.crm.base import Connector, MessageFacts, SyncRequest
from app.crm.hubspot import HubSpot
from app.crm.salesforce import Salesforce
from scripts.bench.lib.common import REPO_ROOT, say
from scripts.bench.lib.crm_pipeline import (
    Pipeline,
    flood,
    new_tenant,
    start_pipeline,
    wait_for,
    written_once,
)
from scripts.bench.lib.fixtures import (
    create_database,
    database_url_for,
    delete_redis_keys,
    drop_database,
    run_cli,
)
from scripts.bench.lib.loadgen import percentile
from scripts.bench.lib.servers import free_port
from scripts.fake_crm import FakeCrm
from scripts.fake_hubspot import FakeHubSpot
from scripts.fake_salesforce import FakeSalesforce
from scripts.fake_twilio import FakeTwilio

PHASES = ("hubspot", "salesforce", "campaign", "isolation")
Pcts = tuple[float, float, float]


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--rate", type=float, default=100.0, help="inbound replies a second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--latency-ms", type=float, default=100.0, help="each CRM call's time")
    parser.add_argument("--campaign", type=int, default=10_000, help="outbound messages")
    parser.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the rest")
    parser.add_argument("--keep", action="store_true", help="keep the database, to look into")
    parser.add_argument(
        "--pg-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return parser.parse_args(argv)


def pcts(values: list[float]) -> Pcts:
    if not values:
        return (float("nan"),) * 3
    ordered = sorted(values)
    return tuple(percentile(ordered, p) * 1000 for p in (50, 95, 99))  # type: ignore[return-value]


def fmt(p: Pcts) -> str:
    return "/".join(f"{v:.0f}" for v in p)


def verdict(ok: bool) -> str:
    return "HIT" if ok else "MISS"


@dataclass
class Row:
    figure: str
    measured: str
    baseline: str
    target: str
    hit: bool


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: str, measured: str, baseline: str, target: str, hit: bool) -> None:
        self.rows.append(Row(figure, measured, baseline, target, hit))


# -- the baseline: one sync at a time, the connector with batches of one


def one_at_a_time(
    make: Callable[[], Connector], fake: FakeCrm, samples: int, *, routing: bool, area: int
) -> tuple[float, Pcts]:
    """Each message's syncs written on their own, as before batches: their calls, and how
    long those take. A new sender's reply owes two (its activity, then its routing outcome,
    the contact known by then); a campaign's message one (its activity)."""
    connector = make()
    took = []
    before = len(fake.requests)
    for n in range(samples):
        direction = "inbound" if routing else "outbound"
        request = SyncRequest(
            action="log_message",
            external_id=f"baseline:{area}:{n}",
            phone=f"+1{area}555{9000 + n:04d}",
            message=MessageFacts(
                f"msg_baseline_{area}_{n}", direction, "sms", "hi", "received", None,
                datetime.now(UTC),
            ),
            first_try=True,
        )  # fmt: skip
        start = time.monotonic()
        result = connector.apply(request)
        if routing:
            connector.apply(
                SyncRequest(
                    action="routing",
                    external_id=f"baseline:{area}:{n}:routing",
                    phone=request.phone,
                    known_contact=result.contact,
                    details={"action": "create_lead"},
                    first_try=True,
                )
            )
        took.append(time.monotonic() - start)
    return (len(fake.requests) - before) / samples, pcts(took)


# -- the pipeline


# -- the phases


def replies_phase(
    args: argparse.Namespace,
    pipeline: Pipeline,
    twilio: FakeTwilio,
    fake: FakeCrm,
    connect: list[str],
    kind: str,
    base: tuple[float, Pcts],
    report: Report,
    calls_target: float,
) -> None:
    tenant = new_tenant(pipeline.env, twilio, f"bench-{kind}", connect)
    before = len(fake.requests)
    refused_before = fake.refused
    total = int(args.rate * args.seconds)
    say(f"{kind}: {total} replies at {args.rate:g}/s; each call answered in {args.latency_ms:g} ms")
    area = 204 if kind == "hubspot" else 205
    done = flood(pipeline, twilio, tenant, args.rate, args.seconds, f"{area - 200:02x}", area)

    def records() -> list[tuple[str, float]]:
        if isinstance(fake, FakeHubSpot):
            return [
                (c["properties"].get("hs_communication_body", ""), fake.created_ts[c["id"]])
                for c in fake.communications()
            ]
        assert isinstance(fake, FakeSalesforce)
        return [(t.get("Description", ""), fake.created_ts[t["Id"]]) for t in fake.of("Task")]

    wait_for(lambda: sum(1 for token, _ in records() if token in done.sent), total, args.wait)
    latencies, doubled = written_once(records(), done.sent)
    calls = len(fake.requests) - before
    refused = fake.refused - refused_before
    per_reply = calls / total
    e2e = pcts(latencies)
    all_written = len(latencies) == total and not doubled
    report.add(
        f"{kind}: webhook -> activity written, p50/p95/p99 ms",
        f"{fmt(e2e)} ({len(latencies)}/{total} written, {doubled} doubled)",
        f"one at a time: {fmt(base[1])} per reply's calls alone",
        "p95 < 5000, all written once",
        e2e[1] < 5000 and all_written,
    )
    report.add(
        f"{kind}: API calls per reply",
        f"{per_reply:.3f} ({calls} calls)",
        f"one at a time: {base[0]:.2f}",
        f"<= {calls_target:g}",
        per_reply <= calls_target,
    )
    if isinstance(fake, FakeHubSpot):
        share = refused / calls if calls else 0.0
        report.add(
            f"{kind}: calls refused (429)",
            f"{share:.2%} ({refused})",
            "-",
            "<= 1%",
            share <= 0.01,
        )
    if done.errors:
        codes = ", ".join(f"{c}: {n}" for c, n in sorted(Counter(done.errors).items()))
        report.notes.append(f"{kind}: webhook POSTs not answered 200 ({codes})")


def campaign_phase(
    args: argparse.Namespace,
    pipeline: Pipeline,
    twilio: FakeTwilio,
    hub: FakeHubSpot,
    base: tuple[float, Pcts],
    report: Report,
) -> None:
    from app import create_app
    from app.domain.ids import new_id
    from app.domain.statuses import Status
    from app.messaging.contacts import get_or_create_contact
    from app.messaging.states import apply_transition
    from app.models import Message
    from config import load_settings

    connect = ["--kind", "hubspot", "--token", hub.token, "--base-url", hub.base_url]
    tenant = new_tenant(pipeline.env, twilio, "bench-campaign", connect)
    app = create_app({"settings": load_settings(pipeline.env)})
    db = app.extensions["switchboard.db"]
    total = args.campaign
    say(f"campaign: {total} outbound messages reach their final status")
    before = len(hub.requests)
    now = datetime.now(UTC)
    ids: list[str] = []
    with db.session() as s:  # the campaign, already sent: each waits for its receipt
        for n in range(total):
            contact = get_or_create_contact(s, tenant.id, f"+1203555{n:04d}")
            message = Message(
                id=new_id("msg"), tenant_id=tenant.id, direction="outbound", channel="sms",
                channels=["sms"], account_id=tenant.account, contact_id=contact.id,
                priority="bulk", status="sent", body=f"campaign {n}", attempts=1, throttles=0,
                segments=1, encoding="GSM-7", quiet_hours="respect", metadata_={},
                provider_message_id=f"SMc{n:031d}", created_at=now, updated_at=now,
            )  # fmt: skip
            s.add(message)
            ids.append(message.id)
    started = time.time()
    for start in range(0, total, 500):  # the receipts, 500 a transaction as a drain does
        with db.session() as s:
            for message in s.query(Message).filter(Message.id.in_(ids[start : start + 500])):
                apply_transition(s, message, Status.DELIVERED, source="provider")
    last_status = time.time()

    def written() -> int:
        return sum(
            1
            for c in hub.communications()
            if c["properties"].get("hs_communication_body", "").startswith("campaign ")
        )

    cleared = wait_for(written, total, args.wait)
    calls = len(hub.requests) - before
    per_message = calls / total
    after = cleared - last_status
    report.add(
        "campaign: API calls per message",
        f"{per_message:.3f} ({calls} calls for {total})",
        f"one at a time: {base[0]:.2f}",
        "<= 0.1",
        per_message <= 0.1,
    )
    report.add(
        "campaign: backlog cleared after the last status",
        f"{after:.1f} s (statuses written over {last_status - started:.1f} s)",
        f"one at a time: {total * base[0] / 9:.0f} s at HubSpot's 9 calls/s",
        "<= 120 s",
        after <= 120,
    )


def isolation_phase(
    args: argparse.Namespace,
    pipeline: Pipeline,
    twilio: FakeTwilio,
    hub: FakeHubSpot,
    report: Report,
) -> None:
    connect = ["--kind", "hubspot", "--token", hub.token, "--base-url", hub.base_url]
    tenant = new_tenant(pipeline.env, twilio, "bench-isolation", connect)
    headers = {"Authorization": f"Bearer {tenant.key}"}
    counter = iter(range(10**6))

    def urgent_sends(n: int, gap: float) -> list[float]:
        took = []
        for _ in range(n):
            to = f"+1202559{next(counter):04d}"
            started = time.monotonic()
            r = requests.post(
                f"{pipeline.app_url}/v1/messages",
                json={"to": to, "body": "your code is 1234", "priority": "urgent"},
                headers=headers,
                timeout=30,
            )
            if r.status_code != 202:
                continue
            while not twilio.sends_to(to) and time.monotonic() - started < 30:
                time.sleep(0.005)
            took.append(time.monotonic() - started)
            time.sleep(gap)
        return took

    say("isolation: urgent sends with HubSpot up and no flood (the baseline)")
    quiet = urgent_sends(40, 0.1)
    say("isolation: HubSpot down; the replies flood in, urgent sends all the while")
    hub.set_mode("down")
    during: list[float] = []
    count = int(args.rate * args.seconds)
    done = flood(
        pipeline,
        twilio,
        tenant,
        args.rate,
        args.seconds,
        "06",
        206,
        during=lambda: during.extend(urgent_sends(int(args.seconds * 4), 0.2)),
    )
    from sqlalchemy import create_engine, text

    engine = create_engine(pipeline.env["DATABASE_URL"])
    owed = text("SELECT count(*) FROM crm_syncs WHERE connection_id = :c AND status <> 'done'")

    def waiting() -> int:
        with engine.connect() as conn:
            return int(conn.execute(owed, {"c": tenant.connection}).scalar_one())

    wait_for(waiting, count, args.wait)
    backlog = waiting()
    say(f"isolation: {backlog} CRM writes wait on HubSpot; urgent sends now")
    after = urgent_sends(60, 0.1)
    engine.dispose()
    p = pcts(after)
    report.add(
        f"isolation: urgent dispatched while HubSpot is down and {backlog} writes wait, "
        "p50/p95/p99 ms",
        f"{fmt(p)} ({len(after)} sends)",
        f"CRM up, no flood: {fmt(pcts(quiet))}",
        "p95 < 1000",
        p[1] < 1000,
    )
    flooded = pcts(during)
    report.add(
        f"isolation: the same during the flood itself ({args.rate:g} replies/s into web and "
        "intake), p50/p95/p99 ms",
        f"{fmt(flooded)} ({len(during)} sends)",
        f"CRM up, no flood: {fmt(pcts(quiet))}",
        "p95 < 1000",
        flooded[1] < 1000,
    )
    hub.set_mode("ok")
    if done.errors:
        report.notes.append(f"isolation: {len(done.errors)} webhook POSTs not answered 200")


@contextlib.contextmanager
def started(fake: FakeCrm) -> Iterator[FakeCrm]:
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phases: {', '.join(sorted(unknown))}")
    run_id = secrets.token_hex(4)
    db_name, prefix = f"switchboard_bench_{run_id}", f"switchboard-bench-{run_id}:"
    log_dir = Path(tempfile.mkdtemp(prefix=f"switchboard-crm-{run_id}-"))
    twilio = FakeTwilio(send_callbacks=False).start()
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "BROKER_URL"}}
    env.update(
        DATABASE_URL=database_url_for(args.pg_url, db_name), REDIS_URL=args.redis_url,
        BROKER_KEYPREFIX=prefix, ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=Fernet.generate_key().decode(), SWITCHBOARD_VAR_DIR=str(log_dir / "var"),
        PYTHONPATH=REPO_ROOT.as_posix(), LOG_LEVEL="WARNING", PORT=str(port),
        PUBLIC_BASE_URL=app_url, TENANT_API_RATE="100000", TENANT_API_BURST="100000",
        ACCOUNT_RATE="100000", ACCOUNT_BURST="100000",
    )  # fmt: skip
    latency = args.latency_ms / 1000
    report = Report()
    create_database(args.pg_url, db_name)
    pipeline: Pipeline | None = None
    try:
        run_cli(env, "db", "upgrade")
        pipeline = start_pipeline(env, log_dir)
        with started(FakeHubSpot()) as hub, started(FakeSalesforce()) as sf:
            assert isinstance(hub, FakeHubSpot) and isinstance(sf, FakeSalesforce)
            hub.latency = sf.latency = latency
            samples = 20
            say("baselines: one sync at a time, against the same fakes")
            hub_connector = lambda: HubSpot({"token": hub.token, "base_url": hub.base_url})  # noqa: E731
            hub_base = one_at_a_time(hub_connector, hub, samples, routing=True, area=207)
            sf_base = one_at_a_time(
                lambda: Salesforce({"token": sf.token, "instance_url": sf.base_url}),
                sf, samples, routing=True, area=208,
            )  # fmt: skip
            out_base = one_at_a_time(hub_connector, hub, samples, routing=False, area=209)
            hub.limit(calls=100, window=10.0, searches=5, daily=250_000)
            sf.allowance = 1_000_000
            hubspot = ["--kind", "hubspot", "--token", hub.token, "--base-url", hub.base_url]
            if "hubspot" in phases:
                replies_phase(args, pipeline, twilio, hub, hubspot, "hubspot", hub_base,
                              report, 0.1)  # fmt: skip
            if "salesforce" in phases:
                salesforce = ["--kind", "salesforce", "--token", sf.token,
                              "--instance-url", sf.base_url]  # fmt: skip
                replies_phase(args, pipeline, twilio, sf, salesforce, "salesforce", sf_base,
                              report, 0.05)  # fmt: skip
            if "campaign" in phases:
                campaign_phase(args, pipeline, twilio, hub, out_base, report)
            if "isolation" in phases:
                isolation_phase(args, pipeline, twilio, hub, report)
    finally:
        if pipeline is not None:
            pipeline.stop()
        twilio.stop()
        if args.keep:
            say(f"kept {env['DATABASE_URL']} (logs in {log_dir})")
        else:
            with contextlib.suppress(Exception):
                drop_database(args.pg_url, db_name)
        with contextlib.suppress(Exception):
            delete_redis_keys(args.redis_url, prefix)
    print(
        f"\nSwitchboard CRM benchmark (run {run_id}; {args.rate:g} replies/s for "
        f"{args.seconds:g} s; each CRM call answered in {args.latency_ms:g} ms; "
        f"{os.cpu_count()} CPUs shared with Postgres, Redis and the fakes)"
    )
    width = max(len(r.figure) for r in report.rows) if report.rows else 10
    for row in report.rows:
        print(f"{row.figure:<{width}}  {row.measured}")
        print(f"{'':<{width}}  baseline: {row.baseline}; target {row.target}: {verdict(row.hit)}")
    for note in report.notes:
        print(f"note: {note}")
    return 0 if report.rows and all(r.hit for r in report.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
