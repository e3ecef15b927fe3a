"""The restore drill: data written through OpenFGA, backed up, destroyed, restored, compared.

Anyone can run it (it starts everything itself, on loopback)::

    .venv/bin/python -m tests.support.backup_drill --tuples 2000

1. A real PostgreSQL (``tests/support/pg.py``: this project's config and init
   scripts), migrated by the real ``openfga migrate`` as ``openfga_migrator``;
   the real ``openfga run`` as ``openfga_app``.
2. Through OpenFGA's HTTP API: a store, two authorization models (the second
   adds an ``owner`` relation and a condition), tuples written under each, some
   with a condition and its context.
3. The answers of a fixed set of checks (both models, contexts that pass and
   fail the condition) and list-objects calls are recorded, with the database's
   schema revision, the row count of every table, and every relation's owner,
   grants and columns.
4. Backup with the CLI (``python -m openfga_release.recipes.backup backup``) as
   ``openfga_readonly`` to a real S3 server (versitygw on loopback).
5. The PostgreSQL server is destroyed (process and files); a fresh one is
   started from the same init scripts: an empty database with the four roles.
6. Restore with the CLI as ``openfga_migrator`` (objects created by the owner).
7. Everything from 3 is read again, from the restored database and from a new
   ``openfga run`` on it, and must be identical; ``openfga migrate`` on the
   restored database must find nothing to do.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from openfga_release.recipes import backup as bk
from openfga_release.recipes.dsn import Dsn
from openfga_release.recipes.migrate import URI_ENV, read_revision
from openfga_release.recipes.openfga import PRESHARED_KEYS_ENV, new_preshared_key
from psycopg import sql

from tests.support import migrate_local, openfga_local
from tests.support.gobuild_local import ensure_openfga
from tests.support.pg import PgServer, find_install, running_postgres, shared_server_kw
from tests.support.s3_local import S3Server, running_s3

BUCKET = "backups"
PREFIX = "openfga/drill"
WRITE_BATCH = 100  # OpenFGA's default maximum tuples per write
CLI = [sys.executable, "-m", "openfga_release.recipes.backup"]

_DIRECT_USER = {"directly_related_user_types": [{"type": "user"}]}
MODEL_V1: dict[str, Any] = {
    "schema_version": "1.1",
    "type_definitions": [
        {"type": "user"},
        {"type": "folder", "relations": {"viewer": {"this": {}}},
         "metadata": {"relations": {"viewer": _DIRECT_USER}}},
        {"type": "document",
         "relations": {
             "parent": {"this": {}},
             "viewer": {"union": {"child": [
                 {"this": {}},
                 {"tupleToUserset": {"tupleset": {"relation": "parent"},
                                     "computedUserset": {"relation": "viewer"}}},
             ]}},
         },
         "metadata": {"relations": {
             "parent": {"directly_related_user_types": [{"type": "folder"}]},
             "viewer": _DIRECT_USER,
         }}},
    ],
}  # fmt: skip
MODEL_V2: dict[str, Any] = {
    "schema_version": "1.1",
    "type_definitions": [
        {"type": "user"},
        {"type": "folder", "relations": {"viewer": {"this": {}}},
         "metadata": {"relations": {"viewer": _DIRECT_USER}}},
        {"type": "document",
         "relations": {
             "parent": {"this": {}},
             "owner": {"this": {}},
             "viewer": {"union": {"child": [
                 {"this": {}},
                 {"computedUserset": {"relation": "owner"}},
                 {"tupleToUserset": {"tupleset": {"relation": "parent"},
                                     "computedUserset": {"relation": "viewer"}}},
             ]}},
         },
         "metadata": {"relations": {
             "parent": {"directly_related_user_types": [{"type": "folder"}]},
             "owner": _DIRECT_USER,
             "viewer": {"directly_related_user_types": [
                 {"type": "user"}, {"type": "user", "condition": "small"}]},
         }}},
    ],
    "conditions": {"small": {
        "name": "small", "expression": "x < limit",
        "parameters": {"x": {"type_name": "TYPE_NAME_INT"},
                       "limit": {"type_name": "TYPE_NAME_INT"}},
    }},
}  # fmt: skip


class DrillFailed(AssertionError):
    """Something differs between the database before the backup and after the restore."""


# ------------------------------------------------------------------ data through OpenFGA


def tuple_for(i: int, folders: int) -> tuple[int, dict[str, Any]]:
    """Tuple ``i`` of the data set and the model (1 or 2) it is written under."""
    folder = f"folder:f{(i // 4) % folders}"
    kind = i % 4
    if kind == 0:
        return 1, {"user": f"user:u{i}", "relation": "viewer", "object": folder}
    if kind == 1:
        return 1, {"user": folder, "relation": "parent", "object": f"document:d{i}"}
    if kind == 2:
        return 2, {"user": f"user:u{i}", "relation": "viewer", "object": f"document:d{i}",
                   "condition": {"name": "small", "context": {"limit": i % 20}}}  # fmt: skip
    return 2, {"user": f"user:u{i}", "relation": "owner", "object": f"document:d{i - 2}"}


@dataclass
class Dataset:
    store: str
    models: dict[int, str]
    tuples: int
    folders: int


class Api:
    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"})  # fmt: skip

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(path, json=body)
        if r.status_code >= 300:
            raise DrillFailed(f"POST {path}: {r.status_code} {r.text[:500]}")
        out: dict[str, Any] = r.json()
        return out

    def close(self) -> None:
        self.http.close()


def seed(api: Api, tuples: int, threads: int = 4) -> Dataset:
    folders = max(10, tuples // 40)
    store = api.post("/stores", {"name": "backup-drill"})["id"]
    models = {v: api.post(f"/stores/{store}/authorization-models", m)["authorization_model_id"]
              for v, m in ((1, MODEL_V1), (2, MODEL_V2))}  # fmt: skip
    batches: dict[int, list[list[dict[str, Any]]]] = {1: [[]], 2: [[]]}
    for i in range(tuples):
        version, key = tuple_for(i, folders)
        if len(batches[version][-1]) == WRITE_BATCH:
            batches[version].append([])
        batches[version][-1].append(key)
    jobs = [(models[v], b) for v in (1, 2) for b in batches[v] if b]

    def write(job: tuple[str, list[dict[str, Any]]]) -> None:
        api.post(f"/stores/{store}/write",
                 {"authorization_model_id": job[0], "writes": {"tuple_keys": job[1]}})

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, jobs))
    return Dataset(store, models, tuples, folders)


def probes(ds: Dataset) -> list[tuple[str, dict[str, Any]]]:
    """Checks and list-objects calls whose answers must survive the restore."""
    m1, m2 = ds.models[1], ds.models[2]
    out: list[tuple[str, dict[str, Any]]] = []
    for user, obj in (("u0", "d1"), ("u4", "d1"), ("u0", "d5"), ("u8", "d9"), ("u2", "d1")):
        for model in (m1, m2):
            out.append(("check", {"authorization_model_id": model, "tuple_key": {
                "user": f"user:{user}", "relation": "viewer", "object": f"document:{obj}"},
                "context": {"x": 0}}))  # fmt: skip
    for i, x in ((2, 0), (2, 1), (2, 5), (6, 5), (6, 6), (10, 9)):
        out.append(("check", {"authorization_model_id": m2, "tuple_key": {
            "user": f"user:u{i}", "relation": "viewer", "object": f"document:d{i}"},
            "context": {"x": x}}))  # fmt: skip
    out.append(("check", {"authorization_model_id": m2, "tuple_key": {
        "user": "user:u3", "relation": "viewer", "object": "document:d1"}, "context": {"x": 99}}))
    for user, rel, model in (("u0", "viewer", m1), ("u0", "viewer", m2), ("u4", "viewer", m2),
                             ("u3", "owner", m2), ("u7", "viewer", m2)):  # fmt: skip
        out.append(("list-objects", {"authorization_model_id": model, "type": "document",
                                     "relation": rel, "user": f"user:{user}",
                                     "context": {"x": 0}}))  # fmt: skip
    return out


def answers(api: Api, ds: Dataset) -> list[Any]:
    out: list[Any] = []
    for kind, body in probes(ds):
        got = api.post(f"/stores/{ds.store}/{kind}", body)
        out.append(got["allowed"] if kind == "check" else sorted(got["objects"]))
    return out


# ------------------------------------------------------------------ database facts


def db_state(pg: PgServer) -> dict[str, Any]:
    """Schema revision, rows per table, and every relation's kind, owner, grants, columns."""
    with pg.superuser() as conn:
        relations = conn.execute(
            "SELECT c.relname, c.relkind::text, pg_get_userbyid(c.relowner), c.relacl::text "
            "FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1"
        ).fetchall()
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()
        counts = {}
        for name, kind, _, _ in relations:
            if kind == "r":
                query = sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(name))
                counts[name] = conn.execute(query).fetchone()[0]  # type: ignore[index]
        revision = read_revision(conn)
    return {"revision": revision, "rows": counts, "relations": [list(r) for r in relations],
            "columns": [list(c) for c in columns]}  # fmt: skip


def dsn(pg: PgServer, who: str) -> Dsn:
    return Dsn(host=pg.host, port=pg.port, database=pg.names.database, user=pg.role(who),
               password=pg.passwords[who], sslmode=pg.default_sslmode)  # fmt: skip


@contextmanager
def openfga(binary: str, pg: PgServer, key: str) -> Iterator[Api]:
    env = {URI_ENV: dsn(pg, "app").secret_uri(), PRESHARED_KEYS_ENV: key}
    with openfga_local.run_local(binary, env) as server:
        api = Api(server.url, key)
        try:
            yield api
        finally:
            api.close()


# ------------------------------------------------------------------ the CLI


def store_args(s3: S3Server) -> list[str]:
    return ["--endpoint", s3.endpoint, "--bucket", BUCKET, "--prefix", PREFIX,
            *(["--ca-file", s3.ca_file] if s3.ca_file else [])]  # fmt: skip


def db_args(pg: PgServer, who: str) -> list[str]:
    sslmode = "verify-full" if pg.tls else pg.default_sslmode
    out = ["--host", pg.host, "--port", str(pg.port), "--database", pg.names.database,
           "--user", pg.role(who), "--sslmode", sslmode, "--pg-bin", str(pg.install.bindir)]
    if sslmode.startswith("verify") and pg.ca_file:
        out += ["--sslrootcert", str(pg.ca_file)]
    return out


@dataclass
class CliRun:
    code: int
    result: Any
    stderr: str
    seconds: float


def cli(args: list[str], env: Mapping[str, str], python: str | None = None) -> CliRun:
    """The backup CLI as a job runs it: secrets only in the environment. ``python``: another
    interpreter (one whose environment holds the recipes, as in the backup image)."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("PG", "AWS_"))}  # fmt: skip
    full_env.update(env)
    argv = [python, *CLI[1:]] if python else CLI
    start = time.perf_counter()
    proc = subprocess.run([*argv, *args], env=full_env, capture_output=True, text=True,
                          timeout=1800)  # fmt: skip
    seconds = time.perf_counter() - start
    for name in bk.SECRET_ENV:  # every run, success or failure: no secret in what it prints
        value = env.get(name)
        if value and (value in proc.stdout or value in proc.stderr):
            raise DrillFailed(f"the CLI printed the value of {name}")
    result = json.loads(proc.stdout) if proc.returncode == 0 else None
    return CliRun(proc.returncode, result, proc.stderr, seconds)


def backup(pg: PgServer, s3: S3Server, *extra: str, password: str | None = None) -> CliRun:
    pw = pg.passwords["readonly"] if password is None else password
    return cli(["backup", *store_args(s3), *db_args(pg, "readonly"), *extra],
               {**s3.env, bk.PASSWORD_ENV: pw})  # fmt: skip


def restore(pg: PgServer, s3: S3Server, *extra: str) -> CliRun:
    return cli(["restore", *store_args(s3), *db_args(pg, "migrator"), *extra],
               {**s3.env, bk.PASSWORD_ENV: pg.passwords["migrator"]})  # fmt: skip


def must(run: CliRun, what: str) -> Any:
    if run.code != 0:
        raise DrillFailed(f"{what} failed ({run.code}): {run.stderr}")
    return run.result


# ------------------------------------------------------------------ the drill


@dataclass
class DrillReport:
    tuples: int
    seed_seconds: float
    backup_seconds: float  # the CLI, end to end (dump, verify, upload, retention)
    dump_seconds: float  # pg_dump alone
    restore_seconds: float  # the CLI, end to end (download, verify, restore, check)
    dump_bytes: int
    revision: int
    rows: dict[str, int]
    probes: int
    answers: list[Any] = field(repr=False)


def compare(what: str, before: Any, after: Any) -> None:
    if before != after:
        raise DrillFailed(f"{what} differ after the restore:\nbefore: {before}\nafter:  {after}")


def run_drill(tuples: int = 200, *, tls_s3: bool = False, install: str | None = None,
              log: Any = None) -> DrillReport:  # fmt: skip
    """The whole drill; ``install`` is a PostgreSQL build label (tests/support/pg.py)."""
    say = log or (lambda *_: None)
    kw = shared_server_kw(find_install(install)) if install else {}
    binary = str(ensure_openfga())
    key = new_preshared_key()
    with running_s3((BUCKET,), tls=tls_s3) as s3:
        with running_postgres(**kw) as src:
            migrate_local.run_local(binary, {URI_ENV: dsn(src, "migrator").secret_uri()})
            with openfga(binary, src, key) as api:
                t0 = time.perf_counter()
                ds = seed(api, tuples)
                seeded = time.perf_counter() - t0
                before = answers(api, ds)
            say(f"seeded {tuples} tuples in {seeded:.1f} s")
            state_before = db_state(src)
            made = must(backup(src, s3), "backup")
            say(f"backup {made['backup']}: {made['size']} bytes")
            secrets = [*src.passwords.values(), s3.secret_key]
            for stored in s3.root.rglob("*"):
                if stored.is_file() and any(v.encode() in stored.read_bytes() for v in secrets):
                    raise DrillFailed(f"{stored.name} in the object store holds a secret")
        # The source server and its files are gone: a fresh one from the same init scripts.
        with running_postgres(**kw) as dst:
            restored = restore(dst, s3)
            done = must(restored, "restore")
            compare("schema revision, row counts, owners, grants and columns",
                    state_before, db_state(dst))  # fmt: skip
            with openfga(binary, dst, key) as api:
                compare("OpenFGA check and list-objects answers", before, answers(api, ds))
            again = migrate_local.run_local(binary, {URI_ENV: dsn(dst, "migrator").secret_uri()})
            compare("schema revision after openfga migrate", state_before["revision"],
                    again.revision)  # fmt: skip
    say(f"restored {done['restored']}: identical")
    return DrillReport(
        tuples=tuples, seed_seconds=seeded, backup_seconds=made["total_seconds"],
        dump_seconds=made["dump_seconds"], restore_seconds=done["total_seconds"],
        dump_bytes=made["size"], revision=state_before["revision"], rows=state_before["rows"],
        probes=len(before), answers=before,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tuples", type=int, default=2000)
    p.add_argument("--tls-s3", action="store_true", help="the S3 server speaks HTTPS")
    p.add_argument("--pg", default=None, help="a PostgreSQL build label: pg15, pg18")
    args = p.parse_args(argv)
    report = run_drill(args.tuples, tls_s3=args.tls_s3, install=args.pg, log=print)
    out = asdict(report)
    out.pop("answers")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
