"""The command line: ``Options`` and ``parse_args``."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
TARGET_NAMES = ("floor", "webhook", "twilio", "messages", "receipts")


@dataclass(frozen=True)
class Options:
    duration: float | None
    requests: int | None
    warmup: float
    concurrency: int
    workers: int
    targets: tuple[str, ...]
    pg_url: str
    redis_url: str
    log_level: str
    start_timeout: float
    keep_logs: bool
    as_json: bool
    receipts: int = 3000
    profile_dir: str | None = None
    threads: int | None = None
    runs: int = 1


def describe_bound(duration: float | None, requests: int | None) -> str:
    """How each measured phase ends, e.g. ``15 s`` or ``15 s or 1000 requests``."""
    parts = []
    if duration is not None:
        parts.append(f"{duration:g} s")
    if requests is not None:
        parts.append(f"{requests} requests")
    return " or ".join(parts)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Load Switchboard's intake endpoints and a minimal floor endpoint under "
        "gunicorn (config/gunicorn.py) and compare them."
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="measured seconds per target (default 15, or unbounded with --requests)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="measure the loaded targets this many times, each beside a floor of its own "
        "(the receipts target runs once, in the first); a summary across runs follows",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="measured requests per target instead of (or as well as) a duration",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="unmeasured warm-up seconds per target (default 3)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=16,
        help="concurrent connections, each one request at a time (default 16)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="WEB_CONCURRENCY for every server (default 2)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="WEB_THREADS for every server (default: the config's, 4)",
    )
    parser.add_argument(
        "--targets",
        default=",".join(TARGET_NAMES),
        help=f"comma-separated subset of {','.join(TARGET_NAMES)} (default all)",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL),
        help="an admin connection to Postgres, used to create and drop the "
        "run's database (env BENCH_PG_URL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis for the broker and the floor (env BENCH_REDIS_URL)",
    )
    parser.add_argument(
        "--receipts",
        type=int,
        default=3000,
        help="signed Twilio callbacks in the receipts target, one per seeded message "
        "(default 3000)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="record each target's measured phase with py-spy into DIR and summarize it",
    )
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL for the servers")
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=45.0,
        help="seconds to wait for a server to become ready",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the servers' logs (kept anyway when something fails)",
    )
    parser.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help="print one JSON document on stdout instead of the table",
    )
    return parser


def parse_args(argv: list[str] | None) -> Options:
    parser = _parser()
    args = parser.parse_args(argv)

    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    unknown = sorted(set(targets) - set(TARGET_NAMES))
    if unknown or not targets:
        parser.error(f"--targets: choose from {', '.join(TARGET_NAMES)}")
    if args.concurrency < 1 or args.workers < 1:
        parser.error("--concurrency and --workers must be at least 1")
    if args.requests is not None and args.requests < 1:
        parser.error("--requests must be at least 1")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be positive")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.receipts < 1:
        parser.error("--receipts must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    duration = args.duration
    if duration is None and args.requests is None:
        duration = 15.0
    return Options(
        duration=duration,
        requests=args.requests,
        warmup=args.warmup,
        concurrency=args.concurrency,
        workers=args.workers,
        targets=tuple(t for t in TARGET_NAMES if t in targets),  # the floor always first
        pg_url=args.pg_url,
        redis_url=args.redis_url,
        log_level=args.log_level.upper(),
        start_timeout=args.start_timeout,
        keep_logs=args.keep_logs,
        as_json=args.as_json,
        receipts=args.receipts,
        profile_dir=args.profile,
        threads=args.threads,
        runs=args.runs,
    )
