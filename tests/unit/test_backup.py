"""Pure logic of the backup recipe: naming, retention, manifest, guards, schedules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openfga_release.recipes import backup as bk
from openfga_release.recipes.errors import InputError

T0 = datetime(2026, 11, 1, 3, 17, tzinfo=UTC)
SECRETS = {"PGPASSWORD": "Pg-secret-value-1", "AWS_ACCESS_KEY_ID": "AKIDVALUE123",
           "AWS_SECRET_ACCESS_KEY": "s3-secret-value-9"}  # fmt: skip


def ref(days: int, complete: bool = True, database: str = "openfga") -> bk.BackupRef:
    when = T0 + timedelta(days=days)
    return bk.BackupRef(when, bk.backup_name(database, when), database, complete)


def test_names_round_trip_and_foreign_objects_are_ignored() -> None:
    name = bk.backup_name("openfga", T0)
    assert name == "openfga-backup-openfga-20261101T031700Z"
    keys = [f"p/{name}.pgdump", f"p/{name}.manifest.json", f"p/{name}.pgdump.bak",
            "p/notes.txt", f"p/sub/{name}.pgdump", f"other/{name}.pgdump",
            "p/openfga-backup-openfga-2026.pgdump"]  # fmt: skip
    found = bk.parse_keys(keys, "p")
    assert found == [bk.BackupRef(T0, name, "openfga", True)]
    assert found[0].complete
    only_dump = bk.parse_keys([f"p/{name}.pgdump"], "p")
    assert not only_dump[0].complete


def test_retention_keeps_the_newest_and_only_touches_its_database() -> None:
    backups = [ref(d) for d in range(6)] + [ref(0, database="other")]
    doomed = bk.retention_plan(backups, "openfga", T0 + timedelta(days=6), keep=3)
    assert [b.time.day for b in doomed] == [1, 2, 3]
    assert all(b.database == "openfga" for b in doomed)
    # max age: everything older than 2 days goes, but never the newest backup
    doomed = bk.retention_plan(backups, "openfga", T0 + timedelta(days=30), keep=10,
                               max_age_days=2)  # fmt: skip
    assert [b.time.day for b in doomed] == [1, 2, 3, 4, 5]


def test_retention_leaves_an_upload_in_progress_alone() -> None:
    backups = [ref(0), ref(1, complete=False), ref(5), ref(5, complete=False)]
    now = T0 + timedelta(days=5, hours=1)
    doomed = bk.retention_plan(backups, "openfga", now, keep=5)
    assert doomed == [ref(1, complete=False)]  # older than the newest complete one, stale
    assert bk.retention_plan([ref(0, complete=False)], "openfga", now + timedelta(days=9)) == []


@pytest.mark.parametrize(("keep", "age"), [(0, None), (3, 0)])
def test_retention_arguments_are_checked(keep: int, age: int | None) -> None:
    with pytest.raises(bk.BackupInputError):
        bk.retention_plan([], "openfga", T0, keep=keep, max_age_days=age)


@pytest.mark.parametrize(("endpoint", "words"), [
    ("http://s3.example.com", "https"),
    ("ftp://127.0.0.1", "http(s) URL"),
    ("https://key:secret@s3.example.com", "credentials"),
])  # fmt: skip
def test_endpoint_rules(endpoint: str, words: str) -> None:
    with pytest.raises(bk.BackupInputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        bk.ObjectStore(endpoint=endpoint, bucket="backups")


def test_plain_http_is_fine_on_private_networks_and_prefixes_are_normalised() -> None:
    for host in ("127.0.0.1:9000", "minio.backup.svc:9000", "s3.internal", "10.0.0.5"):
        assert bk.ObjectStore(endpoint=f"http://{host}", bucket="backups")
    store = bk.ObjectStore(endpoint="https://s3.example.com", bucket="b-1", prefix="/a/b/")
    assert store.prefix == "a/b"
    assert store.key("x") == "a/b/x"
    for prefix in ("a/../b", "a//b", "a/*"):
        with pytest.raises(bk.BackupInputError):
            bk.ObjectStore(endpoint="https://s3.example.com", bucket="b-1", prefix=prefix)
    for bucket in ("B", "ab", "a..b", "-ab"):
        with pytest.raises(bk.BackupInputError):
            bk.ObjectStore(endpoint="https://s3.example.com", bucket=bucket)


def test_never_the_superuser_and_tls_for_public_database_hosts() -> None:
    with pytest.raises(bk.BackupInputError, match="superuser"):
        bk.Database(host="db.internal", database="openfga", user="postgres")
    with pytest.raises(InputError, match="sslmode"):
        bk.Database(host="db.example.com", database="openfga", user="openfga_readonly",
                    sslmode="disable")  # fmt: skip
    db = bk.Database(host="db.example.com", database="openfga", user="openfga_readonly")
    assert "sslmode=require" in db.uri()


def test_commands_hold_no_password_and_restore_as_the_owner() -> None:
    db = bk.Database(host="127.0.0.1", port=5433, database="openfga", user="openfga_readonly")
    dump = bk.dump_command(db, "/w/x.pgdump", "/pg/bin")
    assert dump[0] == "/pg/bin/pg_dump"
    assert {"--format=custom", "--schema=public", "--no-owner", "--no-privileges"} <= set(dump)
    assert not any("password" in a.lower() for a in dump)
    script = bk.script_command("/w/x.pgdump", "openfga_owner", "/pg/bin")
    assert {"--no-owner", "--no-privileges", "--role=openfga_owner"} <= set(script)
    env = bk.pg_env({**SECRETS, "PGHOST": "evil", "PATH": "/bin"})
    assert env["PGPASSWORD"] == SECRETS["PGPASSWORD"]
    assert "PGHOST" not in env and "AWS_SECRET_ACCESS_KEY" not in env


def test_scan_counts_rows_and_reads_the_revision() -> None:
    lines = [
        "SET x = 1;\n",
        "COPY public.goose_db_version (id, version_id, is_applied, tstamp) FROM stdin;\n",
        "1\t0\tt\t2026\n", "2\t1\tt\t2026\n", "3\t2\tt\t2026\n", "4\t2\tf\t2026\n", "\\.\n",
        'COPY public."tuple" (store, object_type) FROM stdin;\n', "s\tdoc\n", "\\.\n",
        "COPY public.empty (a) FROM stdin;\n", "\\.\n",
    ]  # fmt: skip
    info = bk.scan_stream(lines)
    assert info.tables == {"goose_db_version": 4, "tuple": 1, "empty": 0}
    assert info.revision == 1  # version 2 was rolled back
    with pytest.raises(bk.CorruptBackup, match="truncated"):
        bk.scan_stream(lines[:4])


def manifest(**kw: object) -> bk.Manifest:
    base: dict[str, object] = dict(
        name="n", dump="n.pgdump", size=10, sha256="a" * 64, created="2026-11-01T03:17:00Z",
        database="openfga", role="openfga_readonly", server_version="17.9",
        client_version="pg_dump (PostgreSQL) 17.9", schema_revision=6, tables={"tuple": 3},
    )
    base.update(kw)
    return bk.Manifest(**base)  # type: ignore[arg-type]


def test_manifest_round_trip_and_damage() -> None:
    m = manifest()
    assert bk.Manifest.from_json(m.to_json(), "k") == m
    for bad in (b"", b"{", m.to_json()[:-20], json.dumps({"format": "x"}).encode(),
                manifest(sha256="xyz").to_json()):  # fmt: skip
        with pytest.raises(bk.CorruptBackup, match="not a valid"):
            bk.Manifest.from_json(bad, "k")


def test_choose_latest_or_by_name() -> None:
    backups = [ref(0), ref(1), ref(2, complete=False), ref(3, database="other")]
    assert bk.choose(backups, "openfga", bk.LATEST) == ref(1)
    assert bk.choose(backups, "openfga", ref(0).name) == ref(0)
    with pytest.raises(bk.CorruptBackup, match="no manifest"):
        bk.choose(backups, "openfga", ref(2).name)
    with pytest.raises(bk.ObjectStoreError, match="no backup named"):
        bk.choose(backups, "openfga", "nope")
    with pytest.raises(bk.ObjectStoreError, match="no complete backup"):
        bk.choose(backups, "absent", bk.LATEST)


def walk(obj: object) -> list[str]:
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in [str(k), *walk(v)]]
    if isinstance(obj, list):
        return [s for v in obj for s in walk(v)]
    return [str(obj)]


DB = bk.Database(host="openfga-postgres.openfga.svc", database="openfga", user="openfga_readonly",
                 sslmode="verify-full", sslrootcert="/etc/openfga-backup/ca/ca.crt")  # fmt: skip
WHERE = bk.ObjectStore(endpoint="https://s3.eu-west-1.amazonaws.com", bucket="backups",
                       prefix="openfga/prod")  # fmt: skip
IMAGE = "registry.example.com/openfga-backup@sha256:" + "0" * 64


def test_cronjob_reads_every_secret_from_secrets() -> None:
    job = bk.cronjob(image=IMAGE, namespace="openfga", db=DB, where=WHERE,
                     password_secret=("openfga-postgres-roles", "readonly-password"),
                     s3_secret=("openfga-backup-s3", "access-key-id", "secret-access-key"),
                     ca_secret=("openfga-postgres-tls", "ca.crt"))  # fmt: skip
    assert job["kind"] == "CronJob" and job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["metadata"]["labels"] == bk.BACKUP_LABELS
    (ctr,) = pod["spec"]["containers"]
    env = {e["name"]: e for e in ctr["env"]}
    for var in bk.SECRET_ENV:
        assert "value" not in env[var] and "secretKeyRef" in env[var]["valueFrom"]
    assert env["BACKUP_PG_USER"]["value"] == "openfga_readonly"
    assert ctr["args"] == bk.BACKUP_ARGS
    assert ctr["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert not set(SECRETS.values()) & set(walk(job))
    with pytest.raises(InputError, match="not pinned"):
        bk.cronjob(image="openfga-backup:latest", namespace="n", db=DB, where=WHERE,
                   password_secret=("a", "b"), s3_secret=("c", "d", "e"))  # fmt: skip
    with pytest.raises(bk.BackupInputError, match="cron"):
        bk.cronjob(image=IMAGE, namespace="n", db=DB, where=WHERE, schedule="daily",
                   password_secret=("a", "b"), s3_secret=("c", "d", "e"))  # fmt: skip


def test_kraftcloud_instance_is_private_and_names_its_secrets() -> None:
    db = bk.Database(host="openfga-postgres.internal", database="openfga",
                     user="openfga_readonly")  # fmt: skip
    spec = bk.kraftcloud_backup_instance(image=IMAGE, db=db, where=WHERE)
    body = spec["body"]
    assert body["restart_policy"] == "never" and "service_group" not in body
    assert spec["secret_env"] == list(bk.SECRET_ENV)
    assert not set(bk.SECRET_ENV) & set(body["env"])
    assert body["env"]["BACKUP_PG_SSLMODE"] == "require"
    assert body["args"] == bk.BACKUP_ARGS
    with pytest.raises(bk.BackupInputError, match=r"\.internal"):
        bk.kraftcloud_backup_instance(image=IMAGE, db=DB, where=WHERE)


def test_cli_errors_name_the_problem_never_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    code = bk.main(["backup", "--endpoint", "http://s3.example.com", "--bucket", "backups",
                    "--host", "127.0.0.1"], env=SECRETS)  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "https" in err
    assert not any(v in err for v in SECRETS.values())
    code = bk.main(["list", "--endpoint", "http://127.0.0.1:9", "--bucket", "backups"], env={})
    assert code == 2 and "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set" in (
        capsys.readouterr().err
    )


# ------------------------------------------------------------------ the Kubernetes flavors

REPO = Path(__file__).resolve().parents[2]
OPENFGA_IMAGE = "registry.example.com/openfga@sha256:" + "1" * 64


def k8s_spec(**kw: Any) -> Any:
    from openfga_release.recipes import kubernetes as k8s

    backup = k8s.Backup(destination="s3://acme-backups/openfga/prod",
                        endpoint_url="https://minio.storage.svc:9000")  # fmt: skip
    return k8s.Spec(openfga_image=OPENFGA_IMAGE, namespace="auth", backup=backup, **kw)


def test_the_statefulset_flavor_gets_a_cronjob_its_network_policy_admits() -> None:
    from openfga_release.recipes import kubernetes as k8s

    src = k8s.PostgresSources.read(REPO / "images" / "postgres")
    spec = bk.with_kubernetes_backup(k8s_spec(), image=IMAGE)
    objects = k8s.render(spec, src)["postgres-statefulset"]
    job = next(o for o in objects if o["kind"] == "CronJob")
    assert job["metadata"]["namespace"] == "auth"
    assert job["spec"]["schedule"] == "0 3 * * *"  # CloudNativePG's 6-field default, minus seconds
    pod = job["spec"]["jobTemplate"]["spec"]["template"]
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy")
    peers = [p["podSelector"]["matchLabels"] for rule in policy["spec"]["ingress"]
             for p in rule["from"]]  # fmt: skip
    assert any(peer.items() <= pod["metadata"]["labels"].items() for peer in peers)
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    assert not sts["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (ctr,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in ctr["env"]}
    assert env["BACKUP_PG_HOST"] == k8s.postgres_host(spec)
    assert env["BACKUP_PG_USER"] == "openfga_readonly"
    assert env["BACKUP_S3_BUCKET"] == "acme-backups"
    assert env["BACKUP_S3_PREFIX"] == "openfga/prod/logical"
    assert env["BACKUP_S3_ENDPOINT"] == "https://minio.storage.svc:9000"
    for var in bk.SECRET_ENV:  # every secret from a Secret the deploy creates, by a known key
        ref_ = env[var]["secretKeyRef"]
        assert ref_["key"] in k8s.SECRET_NAMES[ref_["name"]]
    (ca,) = [v for v in pod["spec"]["volumes"] if v["name"] == "ca"]
    assert ca["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # never tls.key


def test_cloudnativepg_keeps_its_scheduled_backup_on_the_same_store() -> None:
    from openfga_release.recipes import kubernetes as k8s

    src = k8s.PostgresSources.read(REPO / "images" / "postgres")
    spec = k8s_spec(flavor="cnpg")
    with pytest.raises(bk.BackupInputError, match="ScheduledBackup"):
        bk.kubernetes_cronjob(spec, image=IMAGE)
    objects = k8s.render(spec, src)["postgres-cnpg"]
    store = next(o for o in objects if o["kind"] == "ObjectStore")["spec"]["configuration"]
    cron = bk.kubernetes_cronjob(k8s_spec(), image=IMAGE)
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in
           cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert store["endpointURL"] == env["BACKUP_S3_ENDPOINT"]
    assert store["destinationPath"].startswith(f"s3://{env['BACKUP_S3_BUCKET']}/")
    assert store["s3Credentials"]["accessKeyId"] == env[bk.ACCESS_KEY_ENV]["secretKeyRef"]
    assert store["s3Credentials"]["secretAccessKey"] == env[bk.SECRET_KEY_ENV]["secretKeyRef"]
    assert any(o["kind"] == "ScheduledBackup" for o in objects)


def test_the_cli_needs_only_the_recipes_package(tmp_path: Path) -> None:
    """What the backup image holds: openfga_release/recipes and an empty package init."""
    import shutil
    import subprocess
    import sys

    pkg = tmp_path / "openfga_release"
    shutil.copytree(REPO / "ci" / "src" / "openfga_release" / "recipes", pkg / "recipes")
    (pkg / "__init__.py").write_text("")
    code = ("import sys, runpy; sys.path.insert(0, sys.argv[1]); "
            "sys.argv = ['backup', 'restore', '--help']; "
            "runpy.run_module('openfga_release.recipes.backup', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "--overwrite DATABASE" in proc.stdout
    assert "dagger" not in proc.stderr
