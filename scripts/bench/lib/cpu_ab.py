"""A/B figures for the CPU benchmarks: load one target on a running server, then compare
its server CPU per request with a baseline's measured in the same rounds."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from scripts.bench.lib.loadgen import HttpRequest, percentile, run_load
from scripts.bench.lib.servers import Server
from scripts.bench.lib.targets import _tree_cpu


@dataclass
class Figures:
    cpu_ms: float
    rps: float
    latencies: list[float]


def load(
    server: Server, factory: Callable[[int], HttpRequest], args: argparse.Namespace
) -> Figures:
    assert server.proc is not None
    before = _tree_cpu(server.proc.pid)
    result = asyncio.run(
        run_load(
            server.base_url, factory, concurrency=args.concurrency, warmup=2, duration=args.duration
        )
    )
    cpu = _tree_cpu(server.proc.pid) - before
    total = result.warmup.ok + result.measured.ok
    bad = {k: v for k, v in result.measured.statuses.items() if not k.startswith("2")}
    if bad:
        raise SystemExit(f"unexpected answers: {bad}")
    return Figures(cpu * 1000 / max(1, total), result.measured.rps, result.measured.latencies_ms)


def row(
    name: str,
    figures: list[Figures],
    base: list[Figures] | None,
    target: float,
    base_name: str,
) -> str:
    """One line: req/s, CPU per request, p50/p95/p99; beside ``base`` (same rounds), the
    CPU ratio per round and its mean, HIT when the mean is at most ``target``."""
    cpu = sum(f.cpu_ms for f in figures) / len(figures)
    lat = sorted(x for f in figures for x in f.latencies)
    rps = sum(f.rps for f in figures) / len(figures)
    text = (
        f"{name:<16} {rps:7.0f} req/s  CPU {cpu:5.2f} ms/req  "
        f"p50 {percentile(lat, 50):6.1f}  p95 {percentile(lat, 95):6.1f}  "
        f"p99 {percentile(lat, 99):6.1f} ms"
    )
    if base is not None:
        ratios = [f.cpu_ms / b.cpu_ms for f, b in zip(figures, base, strict=True)]
        mean = sum(ratios) / len(ratios)
        each = ", ".join(f"{r:.2f}" for r in ratios)
        text += (
            f"  CPU x{mean:.2f} of {base_name} (rounds: {each})  "
            f"{'HIT' if mean <= target else 'MISS'}"
        )
    return text
