"""Settings read from the environment: embedded default, URL normalization, validation."""

from __future__ import annotations

import json
import ssl
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.security.crypto import Keyring
from config import ConfigError, load_settings

Env = dict[str, str]


@pytest.fixture
def base_env(tmp_path: Path) -> Env:
    """An environment with nothing set but a private var directory."""
    return {"SWITCHBOARD_VAR_DIR": str(tmp_path / "var")}


@pytest.fixture
def production_env(base_env: Env) -> Env:
    """A complete Postgres + Redis environment, as on Heroku."""
    return {
        **base_env,
        "DATABASE_URL": "postgres://user:pw@db.example.com:5432/switchboard",
        "REDIS_URL": "redis://cache.example.com:6379/0",
        "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "BLIND_INDEX_KEY": "b" * 32,
    }


def test_empty_environment_gives_the_embedded_default(base_env: Env, tmp_path: Path) -> None:
    settings = load_settings(base_env)

    var = (tmp_path / "var").resolve()
    assert settings.embedded
    assert settings.is_sqlite
    assert settings.database_url == f"sqlite:///{var / 'switchboard.db'}"
    assert settings.broker_url == f"sqla+sqlite:///{var / 'broker.db'}"
    assert settings.redis_url is None
    assert settings.broker_use_ssl is None
    assert settings.port == 5000
    assert settings.public_base_url == "http://127.0.0.1:5000"


def test_embedded_dev_keys_are_persisted_and_reused(base_env: Env, tmp_path: Path) -> None:
    first = load_settings(base_env)
    second = load_settings(base_env)

    secrets_file = tmp_path / "var" / "dev-secrets.json"
    stored = json.loads(secrets_file.read_text())
    assert first.encryption_keys == second.encryption_keys == (stored["encryption_key"],)
    assert first.blind_index_key == second.blind_index_key == stored["blind_index_key"].encode()
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    Fernet(first.encryption_keys[0].encode())  # a usable key


def test_each_var_dir_gets_its_own_dev_keys(tmp_path: Path) -> None:
    one = load_settings({"SWITCHBOARD_VAR_DIR": str(tmp_path / "one")})
    two = load_settings({"SWITCHBOARD_VAR_DIR": str(tmp_path / "two")})

    assert one.encryption_keys != two.encryption_keys


@pytest.mark.parametrize(
    "url",
    [
        "postgres://user:pw@db.example.com:5432/switchboard",
        "postgresql://user:pw@db.example.com:5432/switchboard",
        "postgresql+psycopg2://user:pw@db.example.com:5432/switchboard",
    ],
)
def test_postgres_urls_pin_psycopg2(production_env: Env, url: str) -> None:
    settings = load_settings({**production_env, "DATABASE_URL": url})

    assert settings.database_url == "postgresql+psycopg2://user:pw@db.example.com:5432/switchboard"
    assert not settings.embedded
    assert not settings.is_sqlite
    assert settings.broker_url == "redis://cache.example.com:6379/0"
    assert settings.broker_use_ssl is None


def test_unknown_database_scheme_is_refused(production_env: Env) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings({**production_env, "DATABASE_URL": "mysql://u:p@h/db"})


def test_rediss_turns_certificate_checks_off_by_default(production_env: Env) -> None:
    env = {**production_env, "REDIS_URL": "rediss://:pw@cache.example.com:6380"}

    settings = load_settings(env)

    assert settings.redis_url == "rediss://:pw@cache.example.com:6380?ssl_cert_reqs=none"
    assert settings.broker_url == settings.redis_url
    assert settings.broker_use_ssl == {"ssl_cert_reqs": ssl.CERT_NONE}


def test_rediss_verifies_certificates_when_asked(production_env: Env) -> None:
    env = {
        **production_env,
        "REDIS_URL": "rediss://:pw@cache.example.com:6380",
        "REDIS_TLS_VERIFY": "true",
    }

    settings = load_settings(env)

    assert settings.redis_url == "rediss://:pw@cache.example.com:6380?ssl_cert_reqs=required"
    assert settings.broker_use_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_redis_tls_verify_must_be_a_boolean(production_env: Env) -> None:
    with pytest.raises(ConfigError, match="REDIS_TLS_VERIFY"):
        load_settings({**production_env, "REDIS_TLS_VERIFY": "maybe"})


def test_redis_url_must_be_redis(production_env: Env) -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_settings({**production_env, "REDIS_URL": "http://cache.example.com"})


def test_postgres_without_encryption_keys_is_refused(production_env: Env) -> None:
    env = {k: v for k, v in production_env.items() if k != "ENCRYPTION_KEYS"}

    with pytest.raises(ConfigError, match="ENCRYPTION_KEYS"):
        load_settings(env)


def test_postgres_without_blind_index_key_is_refused(production_env: Env) -> None:
    env = {k: v for k, v in production_env.items() if k != "BLIND_INDEX_KEY"}

    with pytest.raises(ConfigError, match="BLIND_INDEX_KEY"):
        load_settings(env)


def test_short_blind_index_key_is_refused(production_env: Env) -> None:
    with pytest.raises(ConfigError, match="BLIND_INDEX_KEY"):
        load_settings({**production_env, "BLIND_INDEX_KEY": "short"})


@pytest.mark.parametrize("keys", ["not-a-key", "abc,def", ",", "x" * 44])
def test_bad_fernet_keys_are_refused(production_env: Env, keys: str) -> None:
    with pytest.raises(ConfigError, match="ENCRYPTION_KEYS"):
        load_settings({**production_env, "ENCRYPTION_KEYS": keys})


def test_a_bad_second_key_is_named_by_position(production_env: Env) -> None:
    good = Fernet.generate_key().decode()

    with pytest.raises(ConfigError, match="entry 1"):
        load_settings({**production_env, "ENCRYPTION_KEYS": f"{good},oops"})


def test_several_keys_first_encrypts_all_decrypt(production_env: Env) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = Keyring.from_keys((old,), b"k" * 32).encrypt("+12025550100")

    settings = load_settings({**production_env, "ENCRYPTION_KEYS": f" {new} ,\n{old}"})
    ring = Keyring.from_keys(settings.encryption_keys, settings.blind_index_key)

    assert settings.encryption_keys == (new, old)
    assert ring.decrypt(token) == "+12025550100"
    fresh = ring.encrypt("hello")
    assert Fernet(new.encode()).decrypt(fresh.encode()) == b"hello"


def test_port_and_web_concurrency_are_honoured(base_env: Env) -> None:
    settings = load_settings({**base_env, "PORT": "8123", "WEB_CONCURRENCY": "4"})

    assert settings.port == 8123
    assert settings.web_concurrency == 4
    assert settings.public_base_url == "http://127.0.0.1:8123"


def test_database_pool_defaults_to_the_worker_threads_and_can_be_bounded(base_env: Env) -> None:
    default = load_settings({**base_env, "WORKER_CONCURRENCY": "24"})
    assert (default.database_pool_size, default.database_max_overflow) == (None, 10)
    small = load_settings({**base_env, "DATABASE_POOL_SIZE": "2", "DATABASE_MAX_OVERFLOW": "0"})
    assert (small.database_pool_size, small.database_max_overflow) == (2, 0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_POOL_SIZE", "0"),
        ("DATABASE_MAX_OVERFLOW", "-1"),
        ("PORT", "abc"),
        ("PORT", "0"),
        ("PORT", "80.5"),
        ("WEB_CONCURRENCY", "many"),
        ("WEB_CONCURRENCY", "0"),
        ("MAX_ATTEMPTS", "-1"),
        ("RETRY_BASE_SECONDS", "soon"),
        ("RETRY_MAX_SECONDS", "0"),
        ("LOG_LEVEL", "chatty"),
        ("FLOWER_BASIC_AUTH", "no-colon"),
    ],
)
def test_bad_values_name_their_variable(base_env: Env, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({**base_env, name: value})


def test_port_above_65535_is_refused(base_env: Env) -> None:
    with pytest.raises(ConfigError, match="PORT"):
        load_settings({**base_env, "PORT": "70000"})


def test_redis_without_database_is_refused(base_env: Env) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings({**base_env, "REDIS_URL": "redis://cache.example.com:6379/0"})


def test_postgres_without_a_broker_is_refused(production_env: Env) -> None:
    env = {k: v for k, v in production_env.items() if k != "REDIS_URL"}

    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_settings(env)


def test_public_base_url_loses_its_trailing_slash(base_env: Env) -> None:
    settings = load_settings({**base_env, "PUBLIC_BASE_URL": "https://sb.example.com/"})

    assert settings.public_base_url == "https://sb.example.com"


@pytest.mark.parametrize(
    "url", ["sb.example.com", "ftp://sb.example.com", "//sb.example.com", "https://"]
)
def test_public_base_url_needs_http_or_https(base_env: Env, url: str) -> None:
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        load_settings({**base_env, "PUBLIC_BASE_URL": url})


def test_without_port_the_cli_finds_where_make_run_put_the_web(base_env: Env) -> None:
    var = Path(base_env["SWITCHBOARD_VAR_DIR"])
    var.mkdir(parents=True)
    (var / "run.json").write_text('{"port": 5077}')
    settings = load_settings(base_env)
    assert settings.port == 5077
    assert settings.public_base_url == "http://127.0.0.1:5077"
    # PORT, then PUBLIC_BASE_URL, still win over what make run recorded.
    assert load_settings({**base_env, "PORT": "6001"}).public_base_url.endswith(":6001")
    url = "https://sb.example.com"
    assert load_settings({**base_env, "PUBLIC_BASE_URL": url}).public_base_url == url


@pytest.mark.parametrize("recorded", ['{"port": "x"}', "[]", "not json", '{"port": 70000}'])
def test_a_broken_run_record_falls_back_to_5000(base_env: Env, recorded: str) -> None:
    var = Path(base_env["SWITCHBOARD_VAR_DIR"])
    var.mkdir(parents=True)
    (var / "run.json").write_text(recorded)
    assert load_settings(base_env).port == 5000
