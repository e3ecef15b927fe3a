"""Empty database to a passing smoke test, on this machine: migrate + start + smoke.

    .venv/bin/python benchmarks/bench_e2e.py [--runs 5]

Real PostgreSQL (the project's hardened config, TLS, SCRAM) and the real
OpenFGA binary, the same steps `test-e2e` runs in Dagger: migrate as
openfga_migrator (run + verification pass), `openfga run` as openfga_app until
/healthz says SERVING, then the smoke test. Each run starts from an emptied
schema. Reported as medians and as each phase's share of the whole, since the
machines are shared and absolute seconds drift.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DAGGER_MAIN_OBJECT", "OpenfgaRelease")

from openfga_release.recipes import migrate  # noqa: E402
from openfga_release.recipes import openfga as openfga_server  # noqa: E402
from openfga_release.recipes.dsn import Dsn  # noqa: E402
from openfga_release.standalone.smoke import run_smoke  # noqa: E402

from tests.support import migrate_local, openfga_local  # noqa: E402
from tests.support.gobuild_local import ensure_openfga  # noqa: E402
from tests.support.pg import PgServer, running_postgres  # noqa: E402


def empty_schema(pg: PgServer) -> None:
    with pg.superuser() as conn:
        for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall():
            conn.execute(f'DROP TABLE IF EXISTS public."{name}" CASCADE')


def uri(pg: PgServer, who: str) -> str:
    return Dsn(
        host=pg.host,
        port=pg.port,
        database=pg.names.database,
        user=pg.role(who),
        password=pg.passwords[who],
        sslmode="require",
    ).secret_uri()


def one_run(pg: PgServer, binary: str) -> dict[str, float]:
    key = openfga_server.new_preshared_key()
    t0 = time.perf_counter()
    migrate_local.run_local(binary, {migrate.URI_ENV: uri(pg, "migrator")})
    t1 = time.perf_counter()
    env = {migrate.URI_ENV: uri(pg, "app"), openfga_server.PRESHARED_KEYS_ENV: key}
    with openfga_local.run_local(binary, env) as server:
        t2 = time.perf_counter()
        asyncio.run(run_smoke(server.url, key))
        t3 = time.perf_counter()
    return {"migrate": t1 - t0, "start": t2 - t1, "smoke": t3 - t2, "total": t3 - t0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    binary = str(ensure_openfga())
    print(
        f"# {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
        f"{time.strftime('%Y-%m-%d')}, {args.runs} runs, medians"
    )
    samples: list[dict[str, float]] = []
    with running_postgres() as pg:
        for _ in range(args.runs):
            empty_schema(pg)
            samples.append(one_run(pg, binary))
    med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    for phase in ("migrate", "start", "smoke"):
        print(f"{phase:>8}: {med[phase]:.3f} s  ({med[phase] / med['total']:.0%} of total)")
    print(f"{'total':>8}: {med['total']:.3f} s")


if __name__ == "__main__":
    main()
