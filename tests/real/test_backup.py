"""Backups and restores for real: PostgreSQL, OpenFGA, and an S3 server (versitygw) on loopback.

The drill (tests/support/backup_drill.py) writes through OpenFGA, backs up, destroys
the server, restores into a fresh one and compares everything, on both PostgreSQL
builds. The failure tests drive the same CLI a scheduled job runs and check that
each failure is one clear sentence, never holds a secret, and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from openfga_release.recipes import backup as bk
from openfga_release.recipes import kubernetes as k8s

from tests.support import migrate_local
from tests.support.backup_drill import (
    BUCKET,
    MODEL_V1,
    PREFIX,
    CliRun,
    backup,
    cli,
    db_args,
    db_state,
    dsn,
    openfga,
    restore,
    run_drill,
    seed,
    store_args,
)
from tests.support.gobuild_local import ensure_openfga
from tests.support.kube import ControlPlane, control_plane
from tests.support.net import free_port
from tests.support.pg import PgServer, install_labels, running_postgres
from tests.support.s3_local import S3Server, running_s3
from tests.support.tools import cache_root, locked

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

KEY = "drill-key-" + "x" * 20


@pytest.mark.parametrize("install", install_labels())
def test_restore_drill_gives_the_same_answers(install: str) -> None:
    report = run_drill(240, install=install)
    assert report.revision == 6
    assert report.rows["tuple"] == 240 and report.rows["authorization_model"] == 2
    flat = [a for a in report.answers if isinstance(a, bool)]
    assert True in flat and False in flat  # the probes are not all one answer
    assert any(isinstance(a, list) and a for a in report.answers)


def test_the_drill_over_tls_to_the_object_store() -> None:
    report = run_drill(40, tls_s3=True)
    assert report.rows["tuple"] == 40


# ------------------------------------------------------------------ failures


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3((BUCKET,)) as server:
        yield server


@pytest.fixture(scope="module")
def source() -> Iterator[PgServer]:
    """A migrated database with data written through OpenFGA."""
    binary = str(ensure_openfga())
    with running_postgres() as pg:
        migrate_local.run_local(binary, {"OPENFGA_DATASTORE_URI": dsn(pg, "migrator").secret_uri()})
        with openfga(binary, pg, KEY) as api:
            seed(api, 120)
        yield pg


@pytest.fixture(scope="module")
def fresh() -> Iterator[PgServer]:
    """An empty database from the init scripts; every test leaves it empty."""
    with running_postgres() as pg:
        yield pg


@pytest.fixture(scope="module")
def made(source: PgServer, s3: S3Server) -> dict[str, object]:
    run = backup(source, s3)
    assert run.code == 0, run.stderr
    result: dict[str, object] = run.result
    return result


def assert_clean(run: CliRun, code: int, *words: str) -> None:
    assert run.code == code, run.stderr
    for word in words:
        assert word in run.stderr, run.stderr


def assert_no_secret(run: CliRun, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in run.stderr


def is_empty(pg: PgServer) -> bool:
    return not db_state(pg)["relations"]


def object_path(s3: S3Server, name: str) -> Path:
    return s3.root / BUCKET / PREFIX / name


def test_wrong_secret_key_is_named_without_the_secret(source: PgServer, s3: S3Server) -> None:
    wrong = "Wr0ng-secret-key-value-42"
    run = cli(["backup", *store_args(s3), *db_args(source, "readonly")],
              {bk.ACCESS_KEY_ENV: s3.access_key, bk.SECRET_KEY_ENV: wrong,
               bk.PASSWORD_ENV: source.passwords["readonly"]})  # fmt: skip
    assert_clean(run, 1, "refused the credentials", "SignatureDoesNotMatch")
    assert_no_secret(run, wrong, source.passwords["readonly"])


def test_unknown_access_key_is_named(source: PgServer, s3: S3Server) -> None:
    run = cli(["list", *store_args(s3)],
              {bk.ACCESS_KEY_ENV: "nobody", bk.SECRET_KEY_ENV: s3.secret_key})  # fmt: skip
    assert_clean(run, 1, "refused the credentials")
    assert_no_secret(run, s3.secret_key)


def test_unreachable_endpoint_fails_fast(source: PgServer, s3: S3Server) -> None:
    run = cli(["backup", "--endpoint", f"http://127.0.0.1:{free_port()}", "--bucket", BUCKET,
               *db_args(source, "readonly")],
              {**s3.env, bk.PASSWORD_ENV: source.passwords["readonly"]})  # fmt: skip
    assert_clean(run, 1, "cannot reach the object store")


def test_missing_bucket_is_named(source: PgServer, s3: S3Server) -> None:
    run = cli(["backup", "--endpoint", s3.endpoint, "--bucket", "no-such-bucket",
               *db_args(source, "readonly")],
              {**s3.env, bk.PASSWORD_ENV: source.passwords["readonly"]})  # fmt: skip
    assert_clean(run, 1, "bucket 'no-such-bucket' does not exist")


def test_untrusted_tls_endpoint_is_named() -> None:
    with running_s3((BUCKET,), tls=True) as tls_s3:
        run = cli(["list", "--endpoint", tls_s3.endpoint, "--bucket", BUCKET], tls_s3.env)
        assert_clean(run, 1, "TLS handshake", "--ca-file")
        ok = cli(["list", *store_args(tls_s3)], tls_s3.env)
        assert ok.code == 0, ok.stderr


def test_wrong_database_password_is_named_without_it(source: PgServer, s3: S3Server) -> None:
    wrong = "not-the-readonly-password-7"
    run = backup(source, s3, password=wrong)
    assert_clean(run, 1, "password for openfga_readonly was refused")
    assert_no_secret(run, wrong, s3.secret_key)


def test_the_superuser_is_refused_before_anything_runs(source: PgServer, s3: S3Server) -> None:
    args = ["--host", source.host, "--port", str(source.port), "--user", "postgres"]
    run = cli(["backup", *store_args(s3), *args], {**s3.env, bk.PASSWORD_ENV: "x" * 12})
    assert_clean(run, 2, "never run as the superuser")


def test_a_table_locked_by_a_migration_fails_the_backup_in_bounded_time(
    source: PgServer, s3: S3Server
) -> None:
    with source.superuser(autocommit=False) as conn:
        conn.execute("LOCK TABLE public.tuple IN ACCESS EXCLUSIVE MODE")  # like an ALTER TABLE
        run = backup(source, s3, "--prefix", "locked", "--lock-wait-timeout", "2")
        conn.rollback()
    assert_clean(run, 1, "stayed locked", "nothing was uploaded")
    assert not (s3.root / BUCKET / "locked").exists()

def test_a_backup_is_whole_and_verifiable(made: dict[str, object], s3: S3Server) -> None:
    assert made["schema_revision"] == 6
    manifest = json.loads(object_path(s3, f"{made['backup']}{bk.MANIFEST_SUFFIX}").read_text())
    assert manifest["role"] == "openfga_readonly"
    assert manifest["tables"]["tuple"] == 120
    run = cli(["verify", *store_args(s3), "--backup", str(made["backup"])], s3.env)
    assert run.code == 0, run.stderr
    assert run.result["sha256"] == made["sha256"]


def damaged(s3: S3Server, made: dict[str, object], how: str) -> Iterator[None]:
    dump = object_path(s3, f"{made['backup']}{bk.DUMP_SUFFIX}")
    good = dump.read_bytes()
    try:
        if how == "truncated":
            dump.write_bytes(good[: len(good) // 2])
        else:
            flipped = bytearray(good)
            flipped[len(good) // 2] ^= 0xFF
            dump.write_bytes(bytes(flipped))
        yield
    finally:
        dump.write_bytes(good)


@pytest.mark.parametrize(("how", "words"), [("truncated", "truncated"),
                                            ("corrupted", "corrupted")])  # fmt: skip
def test_a_damaged_backup_is_refused_before_restoring(
    made: dict[str, object], s3: S3Server, fresh: PgServer, how: str, words: str
) -> None:
    for _ in damaged(s3, made, how):
        run = restore(fresh, s3, "--backup", str(made["backup"]), "--source-database", "openfga")
        assert_clean(run, 1, words, "nothing was restored")
        assert is_empty(fresh)


def test_an_undecodable_dump_with_a_matching_manifest_is_refused(
    made: dict[str, object], s3: S3Server, fresh: PgServer
) -> None:
    """Even a checksum that matches does not let garbage through: the archive is decoded."""
    name = f"openfga-backup-openfga-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(0))}"
    garbage = b"PGDMP" + bytes(range(256)) * 8
    manifest = json.loads(object_path(s3, f"{made['backup']}{bk.MANIFEST_SUFFIX}").read_text())
    manifest.update(name=name, dump=name + bk.DUMP_SUFFIX, size=len(garbage),
                    sha256=hashlib.sha256(garbage).hexdigest())  # fmt: skip
    dump, meta = object_path(s3, name + bk.DUMP_SUFFIX), object_path(s3, name + bk.MANIFEST_SUFFIX)
    dump.write_bytes(garbage)
    meta.write_text(json.dumps(manifest))
    try:
        run = restore(fresh, s3, "--backup", name)
        assert_clean(run, 1, "cannot be read back", "nothing was restored")
        assert is_empty(fresh)
    finally:
        dump.unlink()
        meta.unlink()


def test_a_non_empty_target_is_refused_unless_named(
    made: dict[str, object], source: PgServer, s3: S3Server
) -> None:
    before = db_state(source)
    run = restore(source, s3, "--backup", str(made["backup"]))
    assert_clean(run, 1, "already holds", "--overwrite openfga", "nothing was restored")
    wrong = restore(source, s3, "--backup", str(made["backup"]), "--overwrite", "other")
    assert_clean(wrong, 2, "name the database you mean to replace")
    with source.superuser() as conn:  # a change the restore must undo
        conn.execute("DELETE FROM public.tuple WHERE ctid IN (SELECT ctid FROM tuple LIMIT 7)")
        conn.execute("CREATE TABLE public.stray (x int)")
    run = restore(source, s3, "--backup", str(made["backup"]), "--overwrite", "openfga")
    assert run.code == 0, run.stderr
    assert run.result["overwrote"] is True
    assert db_state(source) == before  # the stray table is gone, the rows are back


@pytest.mark.parametrize("role", ["app", "readonly"])
def test_only_the_migrator_can_restore(made: dict[str, object], s3: S3Server, fresh: PgServer,
                                       role: str) -> None:  # fmt: skip
    run = cli(["restore", *store_args(s3), *db_args(fresh, role), "--backup", str(made["backup"])],
              {**s3.env, bk.PASSWORD_ENV: fresh.passwords[role]})  # fmt: skip
    assert_clean(run, 1, "rolled back")
    assert is_empty(fresh)


def test_retention_keeps_the_newest_and_never_touches_foreign_objects(
    source: PgServer, s3: S3Server
) -> None:
    prefix = ["--prefix", "retention"]
    base = s3.root / BUCKET / "retention"
    base.mkdir(exist_ok=True)
    foreign = [base / "notes.txt", base / "openfga-backup-openfga-latest.pgdump"]
    for f in foreign:
        f.write_text("not a backup of this tool")
    made = []
    for _ in range(3):
        run = cli(["backup", "--endpoint", s3.endpoint, "--bucket", BUCKET, *prefix,
                   *db_args(source, "readonly"), "--keep", "2"],
                  {**s3.env, bk.PASSWORD_ENV: source.passwords["readonly"]})  # fmt: skip
        assert run.code == 0, run.stderr
        made.append(run.result["backup"])
        time.sleep(1.1)  # names have one-second resolution
    assert run.result["deleted"] == [made[0]]
    listed = cli(["list", "--endpoint", s3.endpoint, "--bucket", BUCKET, *prefix], s3.env)
    assert [b["backup"] for b in listed.result] == made[1:]
    assert all(f.exists() for f in foreign)


def test_a_backup_taken_during_writes_is_one_consistent_snapshot(source: PgServer,
                                                                 s3: S3Server) -> None:  # fmt: skip
    """OpenFGA writes each tuple and its changelog row in one transaction: in a consistent
    snapshot the two tables hold the same number of rows, whatever the writes in flight."""
    binary = str(ensure_openfga())
    stop = threading.Event()
    written = [0]
    with openfga(binary, source, KEY) as api:
        store = api.post("/stores", {"name": "during-backup"})["id"]
        model = api.post(f"/stores/{store}/authorization-models", MODEL_V1)[
            "authorization_model_id"]

        def writer() -> None:
            while not stop.is_set():
                n = written[0]
                keys = [{"user": f"user:w{n}-{k}", "relation": "viewer", "object": "folder:w"}
                        for k in range(20)]  # fmt: skip
                api.post(f"/stores/{store}/write",
                         {"authorization_model_id": model, "writes": {"tuple_keys": keys}})
                written[0] += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            time.sleep(0.5)
            before = written[0]
            run = backup(source, s3, "--prefix", "during-writes")
            after = written[0]
        finally:
            stop.set()
            thread.join()
    assert run.code == 0, run.stderr
    assert before > 0 and after > before  # writes were in flight around the dump
    with running_postgres() as target:
        done = cli(["restore", "--endpoint", s3.endpoint, "--bucket", BUCKET, "--prefix",
                    "during-writes", *db_args(target, "migrator")],
                   {**s3.env, bk.PASSWORD_ENV: target.passwords["migrator"]})  # fmt: skip
        assert done.code == 0, done.stderr
        rows = db_state(target)["rows"]
    assert rows["tuple"] == rows["changelog"]
    assert rows == run.result["tables"]


# ------------------------------------------------------------------ the image's runtime

DEBIAN_PYTHON = "/usr/bin/python3"  # bookworm's 3.11, what the backup image installs


@pytest.fixture(scope="module")
def image_python(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """The backup image's runtime rebuilt with the image's own steps: Debian's python3, a venv
    with the pinned boto3 from PyPI, and the recipes package alone on its path."""
    venv = cache_root() / ("backup-venv-" + "-".join(bk.IMAGE_REQUIREMENTS).replace("==", "-"))
    with locked(venv.with_suffix(".lock")):
        if not (venv / "bin" / "python3").exists():
            subprocess.run([DEBIAN_PYTHON, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "-q",
                            "--disable-pip-version-check", *bk.IMAGE_REQUIREMENTS],
                           check=True)  # fmt: skip
    pkg = tmp_path_factory.mktemp("image") / "openfga_release"
    shutil.copytree(REPO / "ci" / "src" / "openfga_release" / "recipes", pkg / "recipes")
    (pkg / "__init__.py").write_text("")
    return str(venv / "bin" / "python3"), {"PYTHONPATH": str(pkg.parent)}


def test_the_image_runtime_backs_up_verifies_and_restores(
    image_python: tuple[str, dict[str, str]], source: PgServer, s3: S3Server
) -> None:
    python, path = image_python
    store = ["--endpoint", s3.endpoint, "--bucket", BUCKET, "--prefix", "image-runtime"]
    made = cli(["backup", *store, *db_args(source, "readonly")],
               {**s3.env, **path, bk.PASSWORD_ENV: source.passwords["readonly"]},
               python=python)  # fmt: skip
    assert made.code == 0, made.stderr
    checked = cli(["verify", *store, "--pg-bin", str(source.install.bindir)],
                  {**s3.env, **path}, python=python)  # fmt: skip
    assert checked.code == 0, checked.stderr
    assert checked.result["sha256"] == made.result["sha256"]
    with running_postgres() as target:
        done = cli(["restore", *store, *db_args(target, "migrator")],
                   {**s3.env, **path, bk.PASSWORD_ENV: target.passwords["migrator"]},
                   python=python)  # fmt: skip
        assert done.code == 0, done.stderr
        assert db_state(target)["rows"] == made.result["tables"]


# ------------------------------------------------------------------ Kubernetes schedule


def test_the_cronjob_runs_under_restricted_pod_security_on_a_real_control_plane() -> None:
    """The apiserver accepts the CronJob with strict validation; a Job made from it gets a pod
    past the restricted Pod Security Standard (KWOK runs the pod; no container really runs).
    Its own short-lived control plane: the session's stays with the Kubernetes tests."""
    with control_plane() as kube:
        check_cronjob_on(kube)


def check_cronjob_on(kube: ControlPlane) -> None:
    ns = kube.create_namespace("backup", enforce="restricted")
    spec = k8s.Spec(openfga_image="registry.example.com/openfga@sha256:" + "1" * 64,
                    namespace=ns)  # fmt: skip
    job = bk.kubernetes_cronjob(spec, image="registry.example.com/openfga-backup:1.22.1")
    text = yaml.safe_dump(job, sort_keys=False)
    kube.kubectl("apply", "--server-side", "--field-manager=openfga-release",
                 "--validate=strict", "--warnings-as-errors", "-f", "-", stdin=text)  # fmt: skip
    name = job["metadata"]["name"]
    kube.kubectl("create", "job", f"{name}-drill", f"--from=cronjob/{name}", "-n", ns)
    pods = kube.wait_for("the backup pod", lambda: kube.get_json(
        "pods", "-n", ns, "-l", f"job-name={name}-drill")["items"], timeout=60)
    assert pods[0]["metadata"]["labels"][k8s.COMPONENT_LABEL] == "backup"
    events = kube.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    assert "violates PodSecurity" not in events
