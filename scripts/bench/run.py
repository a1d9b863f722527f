"""Benchmark Switchboard's two intake endpoints against a minimal "floor" endpoint.

    python scripts/bench/run.py [--duration 15] [--concurrency 16] [--workers 2] [--json]

Creates a throw-away Postgres database and Redis key prefix, sets up a tenant,
API key and sandbox account with the ``switchboard`` CLI, serves each app under
gunicorn with config/gunicorn.py, loads it from this process, prints a table,
and removes everything it made (also on error or Ctrl-C). See README.md.

The parts: options.py (command line), fixtures.py (database, Redis, accounts),
servers.py (gunicorn), targets.py (requests and load), checks.py (consistency),
report.py (table and JSON).
"""

# ruff: noqa: E402
# (the repository root must be on sys.path before the project imports below)
from __future__ import annotations

import sys
from pathlib import Path

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import contextlib
import json
import shutil
import signal
import traceback
from collections.abc import Iterator
from types import FrameType

from scripts.bench.lib.checks import check_storage
from scripts.bench.lib.common import SetupError, say
from scripts.bench.lib.fixtures import Environment, new_environment, prepare
from scripts.bench.lib.options import parse_args
from scripts.bench.lib.receipts import validator_cost_us
from scripts.bench.lib.report import render_across, render_table, summarize
from scripts.bench.lib.servers import Server, make_servers
from scripts.bench.lib.targets import TargetResult, run_targets


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    runs: list[dict[str, TargetResult]] = []
    notes: list[str] = []
    envir: Environment | None = None
    servers: dict[str, Server] = {}
    code = 0
    cleanups = contextlib.ExitStack()
    try:
        envir = new_environment(opts)
        prepare(opts, envir, cleanups)
        servers = make_servers(envir.env, envir.log_dir, cleanups)
        for index in range(opts.runs):
            if opts.runs > 1:
                say(f"run {index + 1} of {opts.runs}")
            runs.append({})
            run_targets(opts, envir, servers, runs[-1], index)
        try:
            notes = check_storage(opts, envir, runs)
        except Exception as exc:
            notes = [f"could not check storage: {exc}"]
    except KeyboardInterrupt:
        say("interrupted")
        code = 130
    except SetupError as exc:
        say(f"ERROR: {exc}")
        code = 2
    except Exception:
        say(f"ERROR: the benchmark failed:\n{traceback.format_exc()}")
        code = 2
    finally:
        say("cleaning up")
        with interrupts_ignored():
            cleanups.close()
    if code:
        _keep_or_remove_logs(envir, keep=opts.keep_logs or code != 130)
        return code

    summaries = [summarize(opts, envir, results, servers, notes) for results in runs]
    failed = not all(summary["ok"] for summary in summaries)
    if opts.as_json:
        print(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    else:
        print("\n".join(render_table(summary) for summary in summaries))
        if len(summaries) > 1:
            print(render_across(summaries))
        if any("twilio" in results or "receipts" in results for results in runs):
            print(
                f"  twilio's RequestValidator: {validator_cost_us():.0f} us of CPU per callback "
                "(measured here, in this process)"
            )
    _keep_or_remove_logs(envir, keep=opts.keep_logs or failed or bool(notes))
    return 1 if failed else 0


def _keep_or_remove_logs(envir: Environment | None, keep: bool) -> None:
    if envir is None:
        return
    if keep:
        say(f"server logs kept in {envir.log_dir}")
    else:
        shutil.rmtree(envir.log_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
