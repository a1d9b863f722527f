"""Heroku's ``rediss://`` with a self-signed certificate: a real TLS Redis, started by the test."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.infra.broker import create_celery
from config import load_settings
from tests.support.processes import free_port

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "switchboard-test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[int]:
    """A throwaway Redis that speaks only TLS, with a self-signed certificate; yields its port."""
    cert, key = self_signed(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(cert),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis.from_url(f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none")
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.skip("this redis-server cannot serve TLS")
            time.sleep(0.1)
    try:
        yield port
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def env_for(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "REDIS_URL": f"rediss://127.0.0.1:{port}/0",
        "SWITCHBOARD_VAR_DIR": str(tmp_path),
        **extra,
    }


def test_tasks_travel_over_rediss_with_a_self_signed_certificate(
    tls_redis: int, tmp_path: Path
) -> None:
    settings = load_settings(env_for(tmp_path, tls_redis))
    celery = create_celery(settings)
    celery.send_task("dispatch_message", args=["msg_tls"], queue="intake")
    with celery.connection_for_read() as conn:
        queue = conn.SimpleQueue("intake")
        message = queue.get(timeout=5)
        assert message.payload == [
            ["msg_tls"],
            {},
            {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
        ]
        message.ack()
        queue.close()


def test_verification_can_be_turned_on_and_then_refuses_the_certificate(
    tls_redis: int, tmp_path: Path
) -> None:
    settings = load_settings(env_for(tmp_path, tls_redis, REDIS_TLS_VERIFY="true"))
    celery = create_celery(settings)
    with pytest.raises(Exception, match=r"(?i)certificate"):
        celery.send_task("dispatch_message", args=["msg_tls"], queue="intake")
