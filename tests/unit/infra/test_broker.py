"""Queue names: the Procfile's workers consume every queue, each exactly once."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from app.domain.queues import QueueNames

PROCFILE = Path(__file__).resolve().parents[3] / "Procfile"
# The lanes keep urgent apart from bulk; receipts and CRM writeback have processes of their
# own (chosen by scripts/bench/soak.py, and so that a slow CRM never holds a send's thread).
WORKERS = ("worker", "worker_intake", "worker_bulk", "worker_crm")


def consumed_queues() -> dict[str, list[str]]:
    """The -Q queues of each worker process in the Procfile."""
    commands = {}
    for line in PROCFILE.read_text(encoding="utf-8").splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() in WORKERS:
            commands[name.strip()] = shlex.split(command)
    queues = {}
    for name, argv in commands.items():
        flag = argv.index("-Q")
        queues[name] = argv[flag + 1].split(",")
    return queues


def test_every_worker_is_in_the_procfile() -> None:
    assert set(consumed_queues()) == set(WORKERS)


def test_workers_turn_sigterm_into_a_bounded_shutdown() -> None:
    for line in PROCFILE.read_text(encoding="utf-8").splitlines():
        if line.split(":")[0] in WORKERS:
            assert line.split(":", 1)[1].split()[0] == "REMAP_SIGTERM=SIGQUIT"


def test_workers_consume_every_queue() -> None:
    consumed = consumed_queues()

    assert set().union(*consumed.values()) == set(QueueNames.all())


def test_every_queue_is_consumed_exactly_once() -> None:
    everything = [q for queues in consumed_queues().values() for q in queues]

    assert sorted(everything) == sorted(QueueNames.all())


def test_queue_names_are_unique() -> None:
    assert len(set(QueueNames.all())) == len(QueueNames.all())


@pytest.mark.parametrize(
    ("priority", "queue"),
    [("urgent", "dispatch.urgent"), ("normal", "dispatch.normal"), ("bulk", "dispatch.bulk")],
)
def test_each_priority_has_its_lane(priority: str, queue: str) -> None:
    assert QueueNames.for_priority(priority) == queue
    assert queue in QueueNames.all()


def test_reliability_settings(tmp_path: Path) -> None:
    """Acked late, given back when a worker dies, small prefetch, same transport options."""
    from app.infra.broker import create_celery
    from config import load_settings

    settings = load_settings({"SWITCHBOARD_VAR_DIR": str(tmp_path)})
    conf = create_celery(settings).conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert (conf.worker_pool, conf.worker_concurrency) == ("threads", 16)  # measured
    assert conf.task_publish_retry is False  # the outbox keeps what the broker refused
    assert conf.worker_soft_shutdown_timeout == 20.0  # inside Heroku's 30 s
    assert conf.worker_enable_soft_shutdown_on_idle is False  # idle: stop at once
    assert conf.broker_transport_options == settings.broker_transport_options
    assert {q.name for q in conf.task_queues} == set(QueueNames.all())
    # A queue of its own for each lane on RabbitMQ too: no two share an exchange and key.
    assert {(q.exchange.name, q.routing_key) for q in conf.task_queues} == {
        (q, q) for q in QueueNames.all()
    }


def test_the_embedded_broker_polls_at_the_configured_interval(tmp_path: Path) -> None:
    from app.infra.broker import create_celery
    from config import load_settings

    settings = load_settings(
        {"SWITCHBOARD_VAR_DIR": str(tmp_path), "EMBEDDED_BROKER_POLL_SECONDS": "0.05"}
    )
    assert settings.broker_url.startswith("sqla+sqlite:///")
    celery = create_celery(settings)
    with celery.connection_for_write() as conn:
        transport = conn.transport
        assert transport.polling_interval == 0.05
        assert conn.hostname == settings.broker_url.removeprefix("sqla+")
        with conn.channel() as channel:  # the SQLite file behind it is the configured one
            channel.queue_declare("probe")
    assert (tmp_path / "broker.db").exists()


def test_a_network_broker_keeps_its_url_and_transport() -> None:
    from app.infra.embedded_broker import celery_broker

    for url in ("redis://127.0.0.1:6379/0", "amqp://guest@127.0.0.1//"):
        assert celery_broker(url, 0.1) == (url, None)


# The public names of every task, as the broker carries them. Renaming one strands the tasks
# already queued under the old name, so this list changes only with a migration plan.
PUBLIC_TASK_NAMES = {
    "analytics_rollup",
    "audit_checkpoint",
    "crm_redrive_syncs",
    "crm_sync_contact",
    "dispatch_lane",
    "dispatch_message",
    "enforce_privacy",
    "expand_campaign",
    "expand_running_campaigns",
    "expire_messages",
    "process_inbox_item",
    "purge_inbox",
    "reconcile_stuck_messages",
    "redrive_inbox",
    "relay_outbox",
    "release_due_messages",
    "sandbox_emit_receipts",
}


def test_the_task_names_are_the_public_ones() -> None:
    """TaskNames is what the workers register (test_quiet_logs holds the two equal)."""
    from app.infra.broker import TaskNames

    assert {v for k, v in vars(TaskNames).items() if k.isupper()} == PUBLIC_TASK_NAMES


def _embedded(tmp_path: Path) -> tuple[str, type]:
    from app.infra.embedded_broker import celery_broker

    url, transport = celery_broker(f"sqla+sqlite:///{tmp_path / 'broker.db'}", 0.1)
    assert transport is not None
    return url, transport


@pytest.mark.parametrize("ours", [True, False], ids=["ours", "kombu's own"])
def test_a_queue_another_process_declared_meanwhile_is_taken_not_a_crash(
    tmp_path: Path, ours: bool
) -> None:
    """Every process of the pipeline declares its queues on one file as it starts: another
    may insert a queue's row between this one's check and its commit."""
    from kombu import Connection
    from kombu.transport import sqlalchemy as kombu_sqla
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.exc import IntegrityError

    url, transport = _embedded(tmp_path)
    if not ours:
        transport = type("Plain", (transport,), {"Channel": kombu_sqla.Channel})
    other = create_engine(url)
    with Connection(url, transport=transport) as conn, conn.channel() as channel:
        channel.queue_declare("first")  # the tables exist from here

        def meanwhile(*_: object) -> None:
            with other.begin() as c:
                c.execute(text("INSERT INTO kombu_queue (name) VALUES ('intake')"))

        event.listen(channel.session, "before_flush", meanwhile, once=True)
        if not ours:  # the race is real: kombu alone dies of it
            with pytest.raises(IntegrityError):
                channel.queue_declare("intake")
            return
        channel.queue_declare("intake")
        channel.basic_publish(channel.prepare_message("hello"), exchange="", routing_key="intake")
        assert channel.basic_get("intake", no_ack=True).body == b"hello"
    with other.connect() as c:
        rows = c.execute(text("SELECT count(*) FROM kombu_queue WHERE name = 'intake'"))
        assert rows.scalar_one() == 1
    other.dispose()


@pytest.mark.parametrize("ours", [True, False], ids=["ours", "kombu's own"])
def test_tables_another_process_made_meanwhile_are_used_not_a_crash(
    tmp_path: Path, ours: bool
) -> None:
    from kombu import Connection
    from kombu.transport import sqlalchemy as kombu_sqla
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import OperationalError

    url, transport = _embedded(tmp_path)
    if not ours:
        transport = type("Plain", (transport,), {"Channel": kombu_sqla.Channel})
    other = create_engine(url)

    def meanwhile(*_: object, **__: object) -> None:  # after the check, before the CREATE
        kombu_sqla.metadata.create_all(other)

    event.listen(kombu_sqla.metadata, "before_create", meanwhile, once=True)
    try:
        with Connection(url, transport=transport) as conn, conn.channel() as channel:
            if not ours:  # the race is real: kombu alone dies of it
                with pytest.raises(OperationalError, match="already exists"):
                    channel.queue_declare("intake")
                return
            channel.queue_declare("intake")
            channel.basic_publish(
                channel.prepare_message("hello"), exchange="", routing_key="intake"
            )
            assert channel.basic_get("intake", no_ack=True).body == b"hello"
    finally:
        if event.contains(kombu_sqla.metadata, "before_create", meanwhile):
            event.remove(kombu_sqla.metadata, "before_create", meanwhile)
        other.dispose()
