"""One server setting at a time: what each of recipes/server_tuning.py's choices buys.

    .venv/bin/python benchmarks/bench_settings.py [--tuples 20000] [--rounds 2] \\
        [--seconds 8] [--skew 3] [--only ours,gc]

One PostgreSQL (images/postgres as shipped) and one store, filled once; then each
variant below is an ``openfga run`` of its own on that database, started in turn
(interleaved over ``--rounds``), warmed with 300 checks, and loaded with check,
batch-check and list-objects for ``--seconds`` each at 16 in flight. Reported per
variant: answers/s, the servers' CPU per answer (OpenFGA's process, PostgreSQL's
postmaster with every backend), the client's, answers per server CPU-second, and
OpenFGA's peak resident memory. bench_defaults.py is the comparison the targets
are about; this one is how its settings were chosen (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_defaults import (
    KEY,
    MEMORY_MIB,
    Stack,
    fill,
    openfga_defaults,
    peak_rss_mib,
    phase,
    postmaster_pid,
)
from openfga_release.standalone import bench

from tests.support.fga_stack import migrated, openfga_server
from tests.support.gobuild_local import ensure_openfga
from tests.support.pg import running_postgres

# Overrides on top of server_env(memory_mib=MEMORY_MIB), what a 512 MiB deployment runs
# ("defaults": none of server_tuning's settings; None unsets a variable).
VARIANTS: dict[str, dict[str, str | None]] = {
    "defaults": {},
    "ours": {},
    "cache-10k": {"OPENFGA_CHECK_CACHE_LIMIT": "10000"},
    "no-shared-iterator": {"OPENFGA_SHARED_ITERATOR_ENABLED": None},
    "go-defaults": {"GOGC": None, "GOMEMLIMIT": None},
    "gogc-400": {"GOGC": "400"},
    "ttl-60s": {"OPENFGA_CHECK_QUERY_CACHE_TTL": "60s", "OPENFGA_CHECK_ITERATOR_CACHE_TTL": "60s"},
    "list-objects-cache": {"OPENFGA_LIST_OBJECTS_ITERATOR_CACHE_ENABLED": "true"},
    "log-info": {"OPENFGA_LOG_LEVEL": "info"},
}


def env_for(name: str) -> dict[str, str | None]:
    base = openfga_defaults() if name == "defaults" else {}
    return {**base, **VARIANTS[name]}


def measure(stack: Stack, store: tuple[str, str], args: argparse.Namespace, seed: int,
            acc: dict[str, list[float]]) -> None:
    """One round of the three operations; adds answers, seconds, server and client CPU."""
    for op in bench.OPS:
        cpu, client = stack.cpu_seconds(), time.process_time()
        stats, took = asyncio.run(phase(
            stack.url, store, args.tuples, ops=(op,), requests=10**9, seconds=args.seconds,
            concurrency=16, seed=seed, skew=args.skew))
        answers = len(stats[op].latencies) * (bench.BATCH_SIZE if op == "batch-check" else 1)
        row = acc.setdefault(op, [0.0, 0.0, 0.0, 0.0])
        for i, value in enumerate((answers, took, stack.cpu_seconds() - cpu,
                                   time.process_time() - client)):
            row[i] += value


def report(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| variant | " + " | ".join(f"{op} answers/s (server / client CPU ms)"
                                         for op in bench.OPS)
             + " | answers per server CPU-s | peak RSS MiB |",
             "| --- " * (len(bench.OPS) + 3) + "|"]
    for name, r in results.items():
        cells, answers, cpu = [], 0.0, 0.0
        for op in bench.OPS:
            n, took, server, client = r[op]
            cells.append(f"{n / took:.1f} ({server / n * 1000:.2f} / {client / n * 1000:.2f})")
            answers, cpu = answers + n, cpu + server
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {answers / cpu:.1f} | {r['peak']} |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tuples", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--skew", type=float, default=3.0)
    p.add_argument("--only", default="", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    args = p.parse_args()
    names = [n for n in args.only.split(",") if n] or list(VARIANTS)
    unknown = set(names) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}: choose from {', '.join(VARIANTS)}")
    binary = str(ensure_openfga())
    results: dict[str, dict[str, Any]] = {n: {} for n in names}
    with running_postgres() as pg:
        datastore = migrated(binary, pg)
        store = None
        for r in range(args.rounds):
            for name in names:
                with openfga_server(binary, KEY, datastore=datastore, memory_mib=MEMORY_MIB,
                                    plain_env=env_for(name)) as server:
                    stack = Stack(server.url, server.process.pid, postmaster_pid(pg))
                    if store is None:
                        store = asyncio.run(fill(server.url, args.tuples, 8))[:2]
                    asyncio.run(phase(server.url, store, args.tuples, ops=("check",),
                                      requests=300, seconds=60, concurrency=8, seed=3,
                                      skew=args.skew))
                    measure(stack, store, args, 100 + r, results[name])
                    results[name]["peak"] = max(results[name].get("peak", 0),
                                                peak_rss_mib(server.process.pid))
                print(f"  round {r + 1} {name}: done", flush=True)
    print(f"\n{args.tuples} tuples, skew {args.skew:g}, {args.rounds} rounds of "
          f"{args.seconds:g} s per operation\n")
    print("\n".join(report(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
