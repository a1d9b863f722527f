"""The run's summary: one JSON-ready document, and the table made from it."""

from __future__ import annotations

import math
import os
from typing import Any

from scripts.bench.lib.common import GUNICORN_CONFIG
from scripts.bench.lib.fixtures import Environment
from scripts.bench.lib.loadgen import PhaseStats
from scripts.bench.lib.options import Options, describe_bound
from scripts.bench.lib.servers import Server
from scripts.bench.lib.targets import TargetResult


def _vs(value: float, base: float) -> float | None:
    """``value / base`` to three decimals; None when there is nothing to divide."""
    if not base or math.isnan(base) or math.isnan(value):
        return None
    return round(value / base, 3)


def _vs_floor(stats: PhaseStats, floor: PhaseStats) -> dict[str, float | None]:
    ratios = {"rps": _vs(stats.rps, floor.rps)}
    for pct in (50, 95, 99):
        ratios[f"p{pct}"] = _vs(stats.percentile(pct), floor.percentile(pct))
    return ratios


def summarize(
    opts: Options,
    envir: Environment | None,
    results: dict[str, TargetResult],
    servers: dict[str, Server],
    notes: list[str],
) -> dict[str, Any]:
    server_errors: dict[str, Any] = {}
    for name, server in servers.items():
        if server.started:
            found = server.error_lines()
            server_errors[name] = {"lines": len(found), "first": found[:3]}
    floor = results.get("floor")
    floor_stats = floor.measured if floor and floor.status == "ok" else None
    targets: dict[str, Any] = {}
    for name, result in results.items():
        entry: dict[str, Any] = {
            "endpoint": result.target.endpoint,
            "status": result.status,
            "detail": result.detail,
        }
        stats = result.measured
        if stats is not None:
            entry.update(stats.summary())
            if floor_stats is not None:
                entry["vs_floor"] = _vs_floor(stats, floor_stats)
        if result.server_cpu_s is not None and result.load is not None:
            answered = result.load.measured.total + result.load.warmup.total
            if answered:
                entry["server_cpu_ms_per_request"] = round(1000 * result.server_cpu_s / answered, 2)
                if result.db_cpu_s is not None:
                    entry["db_cpu_ms_per_request"] = round(1000 * result.db_cpu_s / answered, 2)
        if result.applied_per_s is not None:
            entry["applied_per_s"] = round(result.applied_per_s, 1)
        targets[name] = entry
    return {
        "run_id": envir.run_id if envir else None,
        "ok": all(not r.failed for r in results.values()) and bool(results),
        "config": {
            "gunicorn_config": GUNICORN_CONFIG,
            "web_concurrency": opts.workers,
            "web_threads": opts.threads or "4 (config)",
            "concurrency": opts.concurrency,
            "warmup_s": opts.warmup,
            "duration_s": opts.duration,
            "requests": opts.requests,
            "cpus": os.cpu_count(),
            "shared_machine": True,
        },
        "targets": targets,
        "server_log_errors": server_errors,
        "notes": notes,
    }


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _header(summary: dict[str, Any]) -> list[str]:
    cfg = summary["config"]
    bound = describe_bound(cfg["duration_s"], cfg["requests"])
    return [
        "",
        f"Switchboard web benchmark (run {summary['run_id']})",
        f"  servers: gunicorn -c {cfg['gunicorn_config']} (gthread), "
        f"WEB_CONCURRENCY={cfg['web_concurrency']}, WEB_THREADS={cfg['web_threads']}, "
        "bound to 127.0.0.1",
        f"  load: {cfg['concurrency']} connections, closed loop, {cfg['warmup_s']:g} s warm-up "
        f"(not measured) then {bound} per target",
        f"  NOTE: the load generator and the servers share this machine ({cfg['cpus']} CPUs); "
        "compare the ratios, not the absolute numbers.",
        "",
    ]


def _row(entry: dict[str, Any]) -> str:
    if "rps" not in entry:
        return f"{entry['endpoint']:<30} {entry['status'].upper()}: {entry['detail']}"
    vs = entry.get("vs_floor") or {}
    lat = entry["latency_ms"]
    errors = f"{entry['errors']}/{entry['requests']} ({100 * entry['error_rate']:.1f}%)"
    return (
        f"{entry['endpoint']:<30} {entry['rps']:>8.1f} {lat['p50']:>8.1f} {lat['p95']:>8.1f} "
        f"{lat['p99']:>8.1f} {errors:>16} {_fmt_ratio(vs.get('rps')):>9} "
        f"{_fmt_ratio(vs.get('p50')):>9} {_fmt_ratio(vs.get('p99')):>9} "
        f"{entry['loadgen_cpu_percent']:>6.0f}% "
        f"{entry.get('server_cpu_ms_per_request', math.nan):>10.2f} "
        f"{entry.get('db_cpu_ms_per_request', math.nan):>9.2f}"
    )


def _footer(summary: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "  req/s counts 2xx answers; latencies cover every request; 'gen cpu' is the load "
        "generator's own CPU (100% = one core); 'cpu ms/req' the server's CPU per request; "
        "'db ms/req' Postgres's (its backends for this database) per request.",
    ]
    for name, entry in summary["targets"].items():
        if "applied_per_s" in entry:
            hit = entry["applied_per_s"] >= RECEIPTS_TARGET
            lines.append(
                f"  {name}: {entry['applied_per_s']:.1f} receipts applied per second end to end "
                f"(answered, and the status written by a real worker); target "
                f"{RECEIPTS_TARGET}/s: {'HIT' if hit else 'MISS'}"
            )
        if entry.get("status") == "errors":
            lines.append(f"  FAILED {name}: {entry['detail']}")
        for sample in entry.get("error_samples", [])[:3]:
            lines.append(f"  {name} error sample: {sample}")
    for name, found in summary["server_log_errors"].items():
        if found["lines"]:
            first = found["first"][0]
            lines.append(f"  {name} server log: {found['lines']} error lines, first: {first}")
    lines += [f"  check: {note}" for note in summary["notes"]]
    return lines


# The targets: req/s against the floor's, the p99 against its p99, and the server's CPU
# per request. (The receipts target shares the CPUs with the worker applying them, so
# its req/s is not held to the floor's; its end-to-end rate has a target of its own.)
RPS_TARGETS = {"messages": 0.8, "webhook": 0.8, "twilio": 0.8}
P99_TARGETS = {"messages": 2.0}
CPU_TARGETS = {"messages": 2.5}
RECEIPTS_TARGET = 2000


def _checks(name: str, entry: dict[str, Any]) -> list[tuple[str, bool]]:
    """Each target's figures against the targets: (what, hit)."""
    vs = entry.get("vs_floor") or {}
    checks = []
    if name in RPS_TARGETS and vs.get("rps") is not None:
        want = RPS_TARGETS[name]
        checks.append((f"req/s {vs['rps']:.2f}x the floor (target >= {want}x)", vs["rps"] >= want))
    if name in P99_TARGETS and vs.get("p99") is not None:
        want = P99_TARGETS[name]
        checks.append((f"p99 {vs['p99']:.2f}x the floor's (target <= {want}x)", vs["p99"] <= want))
    cpu = entry.get("server_cpu_ms_per_request")
    if name in CPU_TARGETS and cpu is not None:
        want = CPU_TARGETS[name]
        checks.append((f"CPU {cpu:.2f} ms/request (target <= {want} ms)", cpu <= want))
    return checks


def _verdicts(summary: dict[str, Any]) -> list[str]:
    lines = []
    for name, entry in summary["targets"].items():
        checks = [f"{what}: {'HIT' if hit else 'MISS'}" for what, hit in _checks(name, entry)]
        if checks:
            lines.append(f"  {entry['endpoint']}: " + "; ".join(checks))
    return lines


def render_across(summaries: list[dict[str, Any]]) -> str:
    """Each target's ratio to its run's floor, CPU beside the floor's, and verdicts, per run."""
    lines = ["", f"Across {len(summaries)} runs (each against the floor measured in that run):"]
    names = [n for n in summaries[0]["targets"] if n != "floor"]
    for name in names:
        entries = [s["targets"][name] for s in summaries if name in s["targets"]]
        floors = [s["targets"].get("floor", {}) for s in summaries if name in s["targets"]]
        parts = []
        for entry, floor in zip(entries, floors, strict=True):
            vs = entry.get("vs_floor") or {}
            cpu = entry.get("server_cpu_ms_per_request", math.nan)
            floor_cpu = floor.get("server_cpu_ms_per_request", math.nan)
            db = entry.get("db_cpu_ms_per_request", math.nan)
            floor_db = floor.get("db_cpu_ms_per_request", math.nan)
            parts.append(
                f"rps {_fmt_ratio(vs.get('rps'))}, p99 {_fmt_ratio(vs.get('p99'))}, "
                f"cpu {cpu:.2f} ms (floor {floor_cpu:.2f}), "
                f"Postgres {db:.2f} ms (floor {floor_db:.2f})"
            )
        lines.append(f"  {entries[0]['endpoint']}:")
        lines += [f"    run {i + 1}: {part}" for i, part in enumerate(parts)]
        verdicts: dict[str, list[bool]] = {}
        for entry in entries:
            for what, hit in _checks(name, entry):
                verdicts.setdefault(what.split(" ")[0], []).append(hit)
        for what, hits in verdicts.items():
            word = "HIT" if all(hits) else "MISS"
            lines.append(f"    {what}: {word} (hit in {sum(hits)} of {len(hits)} runs)")
    return "\n".join(lines)


def render_table(summary: dict[str, Any]) -> str:
    header = (
        f"{'target':<30} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>16} "
        f"{'rps/floor':>9} {'p50/floor':>9} {'p99/floor':>9} {'gen cpu':>7} {'cpu ms/req':>8} "
        f"{'db ms/req':>9}"
    )
    rows = [_row(entry) for entry in summary["targets"].values()]
    lines = [
        *_header(summary),
        header,
        "-" * len(header),
        *rows,
        *_footer(summary),
        *_verdicts(summary),
    ]
    return "\n".join(lines)
