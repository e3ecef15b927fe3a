"""OpenFGA's and PostgreSQL's defaults against ours, and the memory engine, in one run.

    .venv/bin/python benchmarks/bench_defaults.py [--tuples 20000] [--large 100000] \\
        [--rounds 3] [--seconds 20] [--concurrency 16] [--latency-checks 300]

Stacks (started together, on one machine, one binary, one model, the same
generated data from bench.py):

* (a) **defaults**: PostgreSQL with its own defaults for every setting we tune
  (``-c`` overrides of memory.conf and the planner/logging lines of
  postgresql.conf; TLS, SCRAM and the roles stay), OpenFGA with none of
  recipes/server_tuning.py (its own pool of 30 with 10 idle, no caches, no
  throttling).
* (b) **ours**: images/postgres as shipped, OpenFGA with server_env() as a
  512 MiB deployment gets it (tuning included; GOMEMLIMIT from that limit).
* (c) **memory**: OpenFGA's memory engine with our settings: no database at all.

All three log at ``warn`` (tests/support/fga_stack.py): at ``info`` OpenFGA writes one
line per request, on every stack alike.

Phases, interleaved in ``--rounds`` rounds (a, b, c, a, b, c...) so that the
background load of a shared machine falls on every stack alike:

* **throughput**: check, batch-check (20 checks each) and list-objects in
  turn, ``--concurrency`` in flight, for ``--seconds`` (a new question seed each
  round: questions do not repeat between rounds);
* **warm check latency**: ``--latency-checks`` checks one at a time, after the
  same checks were asked once (warm caches and connections: what a user asking
  the same questions again sees).

``--large`` adds (a) against (b) on that many tuples (100k+); the memory engine
scans every tuple of a store on each read and each write (pkg/storage/memory
in v1.22.1), so it is no upper bound at that size and is left out there.
The load generator (bench.py, Python) runs on the same CPUs and takes about as
much CPU per check as the server does, so besides answers/s the script reads the
CPU time the servers themselves spent (OpenFGA's process; PostgreSQL's
postmaster and every backend it started, from /proc) during the throughput
phases: answers per server CPU-second is the capacity a server with the CPUs
to itself would have, whatever the client and the machine's other jobs cost.

Reports a table (Markdown) and the ratios the targets are about: (b)/(a)
throughput >= 1.5, and (b)'s warm check p50 within 1.3x of (c).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from openfga_release.recipes import server_tuning  # noqa: E402
from openfga_release.recipes.openfga import new_preshared_key  # noqa: E402
from openfga_release.standalone import bench  # noqa: E402

from tests.support.fga_stack import migrated, openfga_server  # noqa: E402
from tests.support.gobuild_local import ensure_openfga  # noqa: E402
from tests.support.pg import running_postgres  # noqa: E402

# PostgreSQL's built-in defaults for what images/postgres changes for speed or logging
# (memory.conf, planner, logging). Security settings (TLS, SCRAM, hba) stay ours.
PG_DEFAULTS = {
    "max_connections": "100", "shared_buffers": "128MB", "effective_cache_size": "4GB",
    "work_mem": "4MB", "maintenance_work_mem": "64MB", "wal_buffers": "-1",
    "random_page_cost": "4", "effective_io_concurrency": "1", "jit": "on",
    "track_io_timing": "off", "log_connections": "off", "log_disconnections": "off",
    "max_wal_size": "1GB", "min_wal_size": "80MB", "checkpoint_completion_target": "0.9",
}
KEY = new_preshared_key()
TICK = os.sysconf("SC_CLK_TCK")
MEMORY_MIB = 512  # (b) as deployed: the Kubernetes and KraftCloud default for OpenFGA


@dataclass(frozen=True)
class Stack:
    url: str
    openfga_pid: int
    postmaster_pid: int | None  # None: the memory engine

    def cpu_seconds(self) -> float:
        """CPU time OpenFGA and PostgreSQL have spent so far (exited backends included)."""
        total = _stat(self.openfga_pid)[0]
        if self.postmaster_pid is not None:
            own, reaped = _stat(self.postmaster_pid)
            total += own + reaped + sum(_stat(child)[0] for child in _children(self.postmaster_pid))
        return total


def _stat(pid: int) -> tuple[float, float]:
    """(utime + stime, cutime + cstime) of a process in seconds (0 once it has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return (int(fields[11]) + int(fields[12])) / TICK, (int(fields[13]) + int(fields[14])) / TICK


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            except OSError:
                continue
            if int(ppid) == pid:
                out.append(int(entry.name))
    return out


def peak_rss_mib(pid: int) -> int:
    """The most resident memory the process has held (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def postmaster_pid(pg: Any) -> int:
    return int((pg.pgdata / "postmaster.pid").read_text().split()[0])


def pg_default_args() -> list[str]:
    return [arg for k, v in PG_DEFAULTS.items() for arg in ("-c", f"{k}={v}")]


def openfga_defaults() -> dict[str, str | None]:
    """Unset every setting of ours: OpenFGA and Go fall back to their own defaults."""
    return dict.fromkeys(server_tuning.tuning_env(memory_mib=MEMORY_MIB), None)


async def fill(url: str, tuples: int, write_concurrency: int) -> tuple[str, str, float]:
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"},
                                 timeout=600) as http:
        store_id, model_id = await bench.setup_store(bench._Api(http), tuples, 1,
                                                     write_concurrency)
    return store_id, model_id, time.monotonic() - started


async def phase(url: str, store: tuple[str, str], tuples: int, *, ops: tuple[str, ...],
                requests: int, seconds: float, concurrency: int, seed: int,
                warmup: int = 0, skew: float = 1.0) -> Any:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"},
                                 timeout=30, limits=httpx.Limits(
                                     max_connections=concurrency,
                                     max_keepalive_connections=concurrency)) as http:
        stats, took, _ = await bench.run_load(
            bench._Api(http), store[0], store[1], bench.Shape.for_tuples(tuples), ops=ops,
            requests=requests, duration=seconds, concurrency=concurrency, warmup=warmup,
            seed=seed, skew=skew)
    return stats, took


def merge(acc: dict[str, Any], stats: dict[str, bench.OpStats], took: float,
          cpu: float = 0.0) -> None:
    """Add one phase: each op's latencies, errors, the seconds it ran and the servers' CPU."""
    for op, s in stats.items():
        into, seconds = acc.setdefault(op, (bench.OpStats(op), [0.0, 0.0]))
        into.latencies += s.latencies
        into.errors += s.errors
        into.first_error = into.first_error or s.first_error
        seconds[0] += took
        seconds[1] += cpu


def rows(acc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per op: its requests over its own seconds; "all": requests of a check's worth
    (a batch-check counts its 20 checks) over all seconds, and over the servers' CPU seconds."""
    out = {op: s.summary(sec[0]) for op, (s, sec) in acc.items()}
    total = sum(sec[0] for _, sec in acc.values())
    cpu = sum(sec[1] for _, sec in acc.values())
    checks = sum(len(s.latencies) * (bench.BATCH_SIZE if op == "batch-check" else 1)
                 for op, (s, _) in acc.items())
    out["all"] = {"rps": round(checks / total, 1) if total else 0.0,
                  "per_cpu_s": round(checks / cpu, 1) if cpu else 0.0,
                  "cpu_share": round(cpu / total, 2) if total else 0.0,
                  "errors": sum(s.errors for s, _ in acc.values())}
    return out


def run_size(servers: dict[str, Stack], tuples: int, args: argparse.Namespace,
             latency: bool) -> dict[str, dict[str, Any]]:
    stores, setup = {}, {}
    for name, stack in servers.items():
        writers = 1 if name.startswith("(c)") else 8  # memory: every write scans the store
        store_id, model_id, took = asyncio.run(fill(stack.url, tuples, writers))
        stores[name], setup[name] = (store_id, model_id), took
        print(f"  {name}: {tuples} tuples written in {took:.1f} s", flush=True)
    thru: dict[str, dict[str, Any]] = {n: {} for n in servers}
    lat: dict[str, dict[str, Any]] = {n: {} for n in servers}
    for r in range(args.rounds):
        for name, stack in servers.items():
            for op in bench.OPS:  # one op at a time: each one's own throughput
                cpu = stack.cpu_seconds()
                stats, took = asyncio.run(phase(
                    stack.url, stores[name], tuples, ops=(op,), requests=10**9,
                    seconds=args.seconds, concurrency=args.concurrency, seed=100 + r,
                    skew=args.skew))
                merge(thru[name], stats, took, stack.cpu_seconds() - cpu)
            if latency:
                stats, took = asyncio.run(phase(
                    stack.url, stores[name], tuples, ops=("check",), requests=args.latency_checks,
                    seconds=600, concurrency=1, seed=500 + r, warmup=args.latency_checks,
                    skew=args.skew))
                merge(lat[name], stats, took)
            print(f"  round {r + 1} {name}: done", flush=True)
    return {name: {"setup": setup[name], "throughput": rows(thru[name]),
                   "latency": rows(lat[name]) if latency else None} for name in servers}


def table(results: dict[str, dict[str, Any]], latency: bool) -> list[str]:
    head = ("| stack | setup s | answers/s (all ops) | answers per server CPU-s | server CPUs busy "
            "| check rps | batch-check rps | list-objects rps | check p50/p95/p99 ms (under load) "
            "| errors |")
    lines = [head, "| --- " * 10 + "|"]
    if latency:
        lines[0] = head[:-len(" errors |")] + " warm check p50/p95/p99 ms | errors |"
        lines[1] = "| --- " * 11 + "|"
    for name, r in results.items():
        t = r["throughput"]
        c = t["check"]
        cells = [name, f"{r['setup']:.1f}", f"{t['all']['rps']}", f"{t['all']['per_cpu_s']}",
                 f"{t['all']['cpu_share']}", f"{c['rps']}",
                 f"{t['batch-check']['rps']}", f"{t['list-objects']['rps']}",
                 f"{c['p50_ms']} / {c['p95_ms']} / {c['p99_ms']}"]
        if latency:
            w = r["latency"]["check"]
            cells.append(f"{w['p50_ms']} / {w['p95_ms']} / {w['p99_ms']}")
        cells.append(str(t["all"]["errors"]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def ratios(a: dict[str, Any], b: dict[str, Any]) -> str:
    rps = b["all"]["rps"] / max(a["all"]["rps"], 1e-9)
    per_cpu = b["all"]["per_cpu_s"] / max(a["all"]["per_cpu_s"], 1e-9)
    return f"answers/s {rps:.2f}, answers per server CPU-second {per_cpu:.2f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tuples", type=int, default=20_000)
    p.add_argument("--large", type=int, default=100_000, help="0: skip the large run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--latency-checks", type=int, default=300)
    p.add_argument("--skew", type=float, default=1.0, help="bench.py --skew (1: uniform)")
    args = p.parse_args()
    # Stopped (SIGTERM): unwind, so the servers and databases started below are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    binary = str(ensure_openfga())
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; tuning: "
          f"{server_tuning.tuning_env(memory_mib=MEMORY_MIB)}", flush=True)
    with ExitStack() as stack:
        pg_a = stack.enter_context(running_postgres(server_args=pg_default_args()))
        pg_b = stack.enter_context(running_postgres())
        a = stack.enter_context(openfga_server(binary, KEY, datastore=migrated(binary, pg_a),
                                               plain_env=openfga_defaults()))
        b = stack.enter_context(openfga_server(binary, KEY, datastore=migrated(binary, pg_b),
                                               memory_mib=MEMORY_MIB))
        c = stack.enter_context(openfga_server(
            binary, KEY, engine="memory", plain_env={"OPENFGA_REQUEST_TIMEOUT": "600s"}))
        servers = {
            "(a) defaults": Stack(a.url, a.process.pid, postmaster_pid(pg_a)),
            "(b) ours": Stack(b.url, b.process.pid, postmaster_pid(pg_b)),
            "(c) memory": Stack(c.url, c.process.pid, None),
        }
        print(f"same data on all three: {args.tuples} tuples", flush=True)
        small = run_size(servers, args.tuples, args, latency=True)
        large = None
        if args.large:
            print(f"(a) against (b) on {args.large} tuples", flush=True)
            large = run_size({k: v for k, v in servers.items() if not k.startswith("(c)")},
                             args.large, args, latency=True)
        peaks = {name: peak_rss_mib(st.openfga_pid) for name, st in servers.items()}
    print(f"\n{args.tuples} tuples, {args.rounds} rounds of {args.seconds:g} s at concurrency "
          f"{args.concurrency} (throughput), {args.rounds} x {args.latency_checks} warm checks "
          "one at a time (latency)\n")
    print("\n".join(table(small, latency=True)))
    print("\npeak resident memory of OpenFGA (VmHWM, whole run): "
          + ", ".join(f"{name} {mib} MiB" for name, mib in peaks.items()))
    ta, tb = small["(a) defaults"]["throughput"], small["(b) ours"]["throughput"]
    wb = small["(b) ours"]["latency"]["check"]["p50_ms"]
    wc = small["(c) memory"]["latency"]["check"]["p50_ms"]
    print(f"\n(b)/(a) throughput: {ratios(ta, tb)} (target >= 1.5); "
          f"(b)/(c) warm check p50: {wb / max(wc, 1e-9):.2f} (target <= 1.3)")
    if large:
        print(f"\n{args.large} tuples, same phases, (a) against (b)\n")
        print("\n".join(table(large, latency=True)))
        la, lb = large["(a) defaults"]["throughput"], large["(b) ours"]["throughput"]
        print(f"\n(b)/(a) throughput: {ratios(la, lb)}; "
              f"check rps {lb['check']['rps'] / max(la['check']['rps'], 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
