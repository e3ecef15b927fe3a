"""Backup and restore of N tuples written through OpenFGA: the RPO/RTO a user can expect.

    .venv/bin/python benchmarks/bench_backup.py [--tuples 100000] [--runs 3]

Everything real, on loopback: PostgreSQL (the project's config, TLS, SCRAM), the
real OpenFGA writing the tuples (two models, a quarter of the tuples with a
condition), versitygw as the S3 server. Each run takes a backup with the CLI a
CronJob runs (as openfga_readonly) and restores it with the CLI into a *fresh*
server made by the init scripts (as openfga_migrator), then checks that the
restored database equals the source (revision, rows, owners, grants, columns).
The first run also asks the restored OpenFGA the drill's checks and list-objects.

Reported: medians of the runs, the dump size and what it is per tuple, and ratios
(restore / backup, database size / dump size), since the machines are shared and
absolute seconds drift.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DAGGER_MAIN_OBJECT", "OpenfgaRelease")

from openfga_release.recipes.migrate import URI_ENV  # noqa: E402
from openfga_release.recipes.openfga import new_preshared_key  # noqa: E402

from tests.support import migrate_local  # noqa: E402
from tests.support.backup_drill import (  # noqa: E402
    answers,
    backup,
    compare,
    db_state,
    dsn,
    must,
    openfga,
    restore,
    seed,
)
from tests.support.gobuild_local import ensure_openfga  # noqa: E402
from tests.support.pg import PgServer, running_postgres  # noqa: E402
from tests.support.s3_local import running_s3  # noqa: E402


def database_bytes(pg: PgServer) -> int:
    with pg.superuser() as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'm')"
        ).fetchone()
    return int(row[0]) if row else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tuples", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    binary = str(ensure_openfga())
    key = new_preshared_key()
    runs: list[dict[str, Any]] = []
    with running_s3(("backups",)) as s3, running_postgres() as src:
        migrate_local.run_local(binary, {URI_ENV: dsn(src, "migrator").secret_uri()})
        with openfga(binary, src, key) as api:
            t0 = time.perf_counter()
            ds = seed(api, args.tuples, threads=4)
            seed_s = time.perf_counter() - t0
            before = answers(api, ds)
        state = db_state(src)
        db_bytes = database_bytes(src)
        for i in range(args.runs):
            made = must(backup(src, s3), "backup")
            with running_postgres() as dst:
                run = restore(dst, s3, "--backup", made["backup"])
                done = must(run, "restore")
                compare("restored database", state, db_state(dst))
                if i == 0:
                    with openfga(binary, dst, key) as api2:
                        compare("OpenFGA answers", before, answers(api2, ds))
            runs.append({"backup_s": made["total_seconds"], "dump_s": made["dump_seconds"],
                         "restore_s": done["total_seconds"], "restore_wall_s": run.seconds,
                         "verify_s": done["verify_seconds"], "size": made["size"]})  # fmt: skip
            time.sleep(1.1)  # backup names have one-second resolution

    def med(k: str) -> float:
        return statistics.median(r[k] for r in runs)

    size = runs[-1]["size"]
    figures = {
        "tuples": args.tuples,
        "runs": args.runs,
        "rows": state["rows"],
        "seed_s": round(seed_s, 1),
        "database_MiB": round(db_bytes / 2**20, 1),
        "dump_MiB": round(size / 2**20, 2),
        "dump_bytes_per_tuple": round(size / args.tuples, 1),
        "database_over_dump": round(db_bytes / size, 1),
        "backup_s_median": round(med("backup_s"), 2),
        "pg_dump_s_median": round(med("dump_s"), 2),
        "restore_s_median": round(med("restore_s"), 2),
        "restore_verify_s_median": round(med("verify_s"), 2),
        "restore_wall_s_median": round(med("restore_wall_s"), 2),
        "restore_over_backup": round(med("restore_s") / med("backup_s"), 2),
        "tuples_per_s_backup": round(args.tuples / med("backup_s")),
        "tuples_per_s_restore": round(args.tuples / med("restore_s")),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU",
        "each_run": runs,
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
