"""The rendered Kubernetes objects: no drift from the committed bases, the properties the
issue asks for, and CloudNativePG objects against our own schemas (tests/support/cnpg_schema.py).
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from openfga_release.recipes import kubedeploy as kd
from openfga_release.recipes import kubernetes as k8s
from openfga_release.recipes import postgres as pg
from openfga_release.recipes.errors import InputError

from tests.support import cnpg_schema

REPO = Path(__file__).resolve().parents[2]
DIGEST = "registry.example.com/openfga@sha256:" + "a" * 64


@pytest.fixture(scope="module")
def src() -> k8s.PostgresSources:
    return k8s.PostgresSources.read(REPO / "images" / "postgres")


def rendered(src: k8s.PostgresSources, **kw: Any) -> dict[str, list[dict[str, Any]]]:
    return k8s.render(k8s.Spec(openfga_image=DIGEST, **kw), src)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def pod_specs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o["spec"]["template"]["spec"] for o in objects
            if o["kind"] in ("Deployment", "StatefulSet", "Job")]


# ------------------------------------------------------------------ no drift

def test_committed_manifests_are_a_fresh_render(src: k8s.PostgresSources) -> None:
    files = k8s.committed_files(src)
    committed = {str(p.relative_to(REPO / "manifests")): p.read_text()
                 for p in (REPO / "manifests").rglob("*.yaml")}
    assert set(committed) == set(files), (
        "manifests/ has other files than a fresh render: run "
        "python -m openfga_release.recipes.kubernetes render --out manifests (after rm -rf)")
    stale = [rel for rel, text in files.items() if committed[rel] != text]
    assert not stale, f"stale: {stale}; regenerate with the render command"


def test_every_base_lists_its_files(src: k8s.PostgresSources) -> None:
    for base in ("openfga", "postgres-statefulset", "postgres-cnpg"):
        kust = yaml.safe_load((REPO / "manifests" / base / "kustomization.yaml").read_text())
        listed = set(kust["resources"])
        present = {p.name for p in (REPO / "manifests" / base).glob("*.yaml")} - {
            "kustomization.yaml"}
        assert listed == present


def test_config_comes_verbatim_from_images_postgres(src: k8s.PostgresSources) -> None:
    objs = rendered(src)["postgres-statefulset"]
    config = next(o for o in objs if o["metadata"]["name"] == k8s.POSTGRES_CONFIG)["data"]
    init = next(o for o in objs if o["metadata"]["name"] == k8s.POSTGRES_INITDB)["data"]
    root = REPO / "images" / "postgres"
    for name in pg.CONFIG_FILES:
        assert config[name] == (root / name).read_text()
    assert config[pg.START_SCRIPT] == (root / pg.START_SCRIPT).read_text()
    for name in pg.INIT_FILES:
        assert init[name] == (root / "initdb.d" / name).read_text()


# ----------------------------------------------------------------- sizing

@pytest.mark.parametrize("memory", ["1Gi", "2Gi", "768Mi"])
def test_memory_conf_is_sized_for_the_container_limit(src: k8s.PostgresSources,
                                                      memory: str) -> None:
    objs = rendered(src, sizes=k8s.Sizes(postgres_memory=memory))["postgres-statefulset"]
    config = next(o for o in objs if o["metadata"]["name"] == k8s.POSTGRES_CONFIG)["data"]
    mib = k8s.quantity_mib(memory)
    assert config["memory.conf"] == pg.render_memory_conf(mib)
    sts = by_kind(objs, "StatefulSet")[0]
    res = sts["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res["limits"]["memory"] == memory == res["requests"]["memory"]


def test_a_size_that_cannot_fit_is_refused_before_rendering() -> None:
    with pytest.raises(InputError, match="max_connections"):
        k8s.Sizes(postgres_memory="256Mi", max_connections=400)


def test_cnpg_parameters_are_the_config_minus_what_the_operator_owns(
        src: k8s.PostgresSources) -> None:
    cluster = by_kind(rendered(src, flavor="cnpg")["postgres-cnpg"], "Cluster")[0]
    params = cluster["spec"]["postgresql"]["parameters"]
    conf = k8s.parse_conf(src.config["postgresql.conf"])
    sized = pg.size_memory(1024).as_conf()
    assert params == {k: v for k, v in {**conf, **sized}.items()
                      if k not in k8s.CNPG_OWNED_PARAMETERS}
    assert all(isinstance(v, str) for v in params.values())
    assert not set(params) & k8s.CNPG_OWNED_PARAMETERS
    assert params["shared_buffers"] == "256MB" and params["password_encryption"] == "scram-sha-256"


# ---------------------------------------------------------------- security

@pytest.mark.parametrize("flavor", k8s.FLAVORS)
def test_every_pod_meets_the_restricted_pod_security_standard(src: k8s.PostgresSources,
                                                              flavor: str) -> None:
    objs = [o for objs in rendered(src, flavor=flavor).values() for o in objs]
    specs = pod_specs(objs)
    assert specs
    for spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["runAsUser"] != 0
            assert "limits" in c["resources"] and "requests" in c["resources"]


def test_openfga_server_deployment(src: k8s.PostgresSources) -> None:
    objs = rendered(src)["openfga"]
    dep = by_kind(objs, "Deployment")[0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert c["securityContext"]["runAsUser"] == 65532 == pod["securityContext"]["runAsUser"]
    assert c["image"] == DIGEST
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"] == {"port": 8081}
    keys = {t["topologyKey"] for t in pod["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    env = {e["name"]: e for e in c["env"]}
    assert env["OPENFGA_DATASTORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == k8s.DATASTORE_SECRET
    assert env["OPENFGA_AUTHN_PRESHARED_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == (
        k8s.PRESHARED_KEYS_SECRET)
    assert env["OPENFGA_PLAYGROUND_ENABLED"]["value"] == "false"
    # Every server pod a rollout can run at once fits PostgreSQL's max_connections.
    pool = int(env["OPENFGA_DATASTORE_MAX_OPEN_CONNS"]["value"])
    pods = spec["replicas"] + spec["strategy"]["rollingUpdate"]["maxSurge"]
    assert pool * pods < k8s.Sizes().max_connections
    assert not any(e.get("value", "").startswith("postgres://") for e in c["env"])
    # Go's soft memory limit follows the container's: 4/5 of 512Mi.
    assert c["resources"]["limits"]["memory"] == "512Mi"
    assert env["GOMEMLIMIT"]["value"] == "409MiB" and env["GOGC"]["value"] == "200"
    big = by_kind(rendered(src, sizes=k8s.Sizes(openfga_memory="2Gi"))["openfga"], "Deployment")
    big_env = {e["name"]: e for e in big[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert big_env["GOMEMLIMIT"]["value"] == "1638MiB"
    assert "initContainers" not in pod  # nothing waits on anything: no deadlock
    pdb = by_kind(objs, "PodDisruptionBudget")[0]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_migration_job_is_per_version_bounded_and_uses_the_migrator(
        src: k8s.PostgresSources) -> None:
    objs = rendered(src, openfga_version="v1.21.0")["openfga"]
    job = by_kind(objs, "Job")[0]
    assert job["metadata"]["name"] == "openfga-migrate-v1-21-0-aaaaaaaaaa"
    assert k8s.migrate_job_name("v1.22.1") == "openfga-migrate-v1-22-1"
    assert job["spec"]["backoffLimit"] == k8s.MIGRATE_BACKOFF_LIMIT <= 3
    assert 0 < job["spec"]["activeDeadlineSeconds"] <= 3600
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][0] == "migrate"
    ref = c["env"][0]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == k8s.MIGRATOR_DATASTORE_SECRET
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert not any(o["metadata"].get("annotations", {}).get("helm.sh/hook") for o in objs)


def test_statefulset_flavor(src: k8s.PostgresSources) -> None:
    objs = rendered(src, sizes=k8s.Sizes(storage_class="fast"))["postgres-statefulset"]
    sts = by_kind(objs, "StatefulSet")[0]
    pod = sts["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["PGDATA"] == pg.PGDATA and pg.PGDATA.startswith(pg.VOLUME + "/")
    assert {"name": "data", "mountPath": pg.VOLUME} in c["volumeMounts"]
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["storageClassName"] == "fast"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain", "whenScaled": "Retain"}
    assert pod["securityContext"]["fsGroup"] == k8s.POSTGRES_UID == c["securityContext"][
        "runAsUser"]
    shm = next(v for v in pod["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "shm", "mountPath": "/dev/shm"} in c["volumeMounts"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["exec"]["command"][0] == "pg_isready"
    services = by_kind(objs, "Service")
    assert {s["spec"].get("clusterIP") for s in services} == {"None", None}
    # No plain password in the pod: *_FILE paths into the roles Secret.
    for var in pg.PASSWORD_ENV.values():
        assert var not in env and env[f"{var}_FILE"].startswith("/etc/postgresql/roles/")
    pdb = by_kind(objs, "PodDisruptionBudget")[0]
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_tls_key_mode_is_one_postgresql_accepts(src: k8s.PostgresSources) -> None:
    sts = by_kind(rendered(src)["postgres-statefulset"], "StatefulSet")[0]
    tls = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls")
    mode = tls["secret"]["defaultMode"]
    # Secret volume files are owned by root, group fsGroup: PostgreSQL's rule for root-owned keys.
    assert pg.key_file_problem(stat.S_IFREG | mode, 0, k8s.POSTGRES_UID) is None
    assert pg.key_file_problem(stat.S_IFREG | 0o644, 0, k8s.POSTGRES_UID) is not None
    assert {i["path"] for i in tls["secret"]["items"]} == {pg.SERVER_CERT, pg.SERVER_KEY}


@pytest.mark.parametrize("flavor", k8s.FLAVORS)
def test_only_openfga_migrate_and_backups_reach_postgres(src: k8s.PostgresSources,
                                                         flavor: str) -> None:
    objs = rendered(src, flavor=flavor)[k8s.POSTGRES_BASE[flavor]]
    policy = next(o for o in by_kind(objs, "NetworkPolicy")
                  if o["metadata"]["name"] == k8s.POSTGRES)
    rule = next(r for r in policy["spec"]["ingress"]
                if {"protocol": "TCP", "port": 5432} in r["ports"])
    components = {p["podSelector"]["matchLabels"].get(k8s.COMPONENT_LABEL)
                  for p in rule["from"]}
    assert {"server", "migrate", "backup"} <= components
    assert all("namespaceSelector" not in p for p in rule["from"])
    # The pods of the openfga base carry exactly those labels.
    for pod in pod_specs(rendered(src, flavor=flavor)["openfga"]):
        assert pod  # (labels checked below)
    for o in rendered(src, flavor=flavor)["openfga"]:
        if o["kind"] in ("Deployment", "Job"):
            labels = o["spec"]["template"]["metadata"]["labels"]
            assert labels[k8s.COMPONENT_LABEL] in k8s.POSTGRES_CLIENTS
            assert labels["app.kubernetes.io/part-of"] == k8s.PART_OF


def test_backup_hook_takes_extra_objects(src: k8s.PostgresSources) -> None:
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "postgres-backup"},
            "spec": {}}
    objs = rendered(src, namespace="prod", postgres_extra=(cron,))["postgres-statefulset"]
    assert objs[-1]["kind"] == "CronJob" and objs[-1]["metadata"]["namespace"] == "prod"
    with pytest.raises(InputError, match="apiVersion, kind and metadata"):
        k8s.Spec(openfga_image=DIGEST, postgres_extra=({"kind": "CronJob"},))


# ------------------------------------------------------------------- inputs

@pytest.mark.parametrize(("kw", "match"), [
    ({"openfga_image": "openfga/openfga:v1.22.1"}, "no digest"),
    ({"namespace": "Bad_NS"}, "not a valid name"),
    ({"flavor": "helm"}, "not known"),
    ({"openfga_version": "1.22"}, "not a release tag"),
    ({"postgres_image": "postgres:17"}, "not pinned"),
])
def test_bad_inputs_are_refused_with_the_fix(kw: dict[str, Any], match: str) -> None:
    args = {"openfga_image": DIGEST, **kw}
    with pytest.raises(InputError, match=match):
        k8s.Spec(**args)


def test_sizes_are_checked() -> None:
    with pytest.raises(InputError, match="openfga-replicas"):
        k8s.Sizes(openfga_replicas=1)
    with pytest.raises(InputError, match="quantity"):
        k8s.Sizes(postgres_storage="ten gigs")
    assert k8s.quantity_mib("1Gi") == 1024 and k8s.quantity_mib("512Mi") == 512
    assert k8s.Sizes(openfga_memory="128Mi").openfga_memory == "128Mi"  # the floor itself
    with pytest.raises(InputError, match=r"openfga-memory 127Mi is below 128Mi.*use 512Mi"):
        k8s.Sizes(openfga_memory="127Mi")


def test_rendered_objects_hold_no_secret_value(src: k8s.PostgresSources) -> None:
    values = kd.SecretValues(
        migrator_password="Migr4tor-Secret-Value-1", app_password="Ap9-Secret-Value-Two",
        readonly_password="R3ad-Secret-Value-Three", preshared_keys=("psk-" + "k" * 20 + "XyZ",),
        tls_crt="CERT", tls_key="-----BEGIN PRIVATE KEY-----secret-key-body")
    for flavor in k8s.FLAVORS:
        spec = k8s.Spec(openfga_image=DIGEST, flavor=flavor)
        text = "".join(k8s.render_files(spec, src).values())
        for value in values.all():
            assert value not in text
        secrets = kd.secret_objects(spec, values)
        names = {s["metadata"]["name"] for s in secrets}
        referenced = set(k8s.SECRET_NAMES)
        assert names <= referenced
        assert repr(values).count("Secret-Value") == 0


# --------------------------------------------------------------------- CNPG

def test_cnpg_objects_match_our_schemas_from_the_docs(src: k8s.PostgresSources) -> None:
    objs = rendered(src, flavor="cnpg")["postgres-cnpg"]
    crd_objects = [o for o in objs if k8s.is_crd_kind(o)]
    assert {o["kind"] for o in crd_objects} == {
        "Cluster", "Pooler", "PodMonitor", "ObjectStore", "ScheduledBackup"}
    for o in crd_objects:
        schema = cnpg_schema.schema_for(o["apiVersion"], o["kind"])
        assert cnpg_schema.check(schema, o["spec"]) == [], o["kind"]


def test_our_schemas_catch_mistakes() -> None:
    bad = {"instances": 3, "storage": {"size": "1Gi"}, "postgresql": {"parameters": {"a": 1}},
           "bootstrapp": {}}
    problems = cnpg_schema.check(cnpg_schema.CLUSTER_SPEC, bad)
    assert any("bootstrapp: unknown field" in p for p in problems)
    assert any("parameters.a: not a string" in p for p in problems)


def test_cnpg_cluster_wiring(src: k8s.PostgresSources) -> None:
    objs = rendered(src, flavor="cnpg")["postgres-cnpg"]
    cluster = by_kind(objs, "Cluster")[0]
    spec = cluster["spec"]
    assert spec["instances"] == 3 and spec["storage"]["size"] == "10Gi"
    assert spec["enableSuperuserAccess"] is False
    assert spec["certificates"]["serverTLSSecret"] == k8s.POSTGRES_TLS_SECRET
    roles = {r["name"]: r for r in spec["managed"]["roles"]}
    names = pg.Names()
    assert set(roles) == {names.owner, names.migrator, names.app, names.readonly}
    assert roles[names.owner]["login"] is False
    assert roles[names.migrator]["inherit"] is False
    assert roles[names.migrator]["inRoles"] == [names.owner]
    for kind in ("migrator", "app", "readonly"):
        r = roles[names.role(kind)]
        assert r["login"] is True and r["superuser"] is False and r["createrole"] is False
        secret = r["passwordSecret"]["name"]
        assert k8s.SECRET_NAMES[secret] == ("username", "password")
    initdb = spec["bootstrap"]["initdb"]
    assert initdb["database"] == names.database and initdb["owner"] == names.owner
    # The least-privilege grants of 10-openfga.sql, made plain.
    app_sql = "\n".join(initdb["postInitApplicationSQL"])
    assert 'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "openfga_app"' in app_sql
    assert 'ALTER SCHEMA public OWNER TO "openfga_owner"' in app_sql
    assert "REVOKE ALL ON SCHEMA public FROM PUBLIC" in app_sql
    post = "\n".join(initdb["postInitSQL"])
    assert 'GRANT "openfga_owner" TO "openfga_migrator" WITH INHERIT FALSE, SET TRUE' in post
    assert "PASSWORD" not in post + app_sql and "\\" not in post + app_sql
    assert "RAISE EXCEPTION" not in post
    # Backups: the plugin archives WAL to the ObjectStore the ScheduledBackup uses.
    store = by_kind(objs, "ObjectStore")[0]
    plugin = spec["plugins"][0]
    assert plugin["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    assert plugin["isWALArchiver"] is True
    sb = by_kind(objs, "ScheduledBackup")[0]
    assert sb["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert sb["spec"]["method"] == "plugin"
    assert sb["spec"]["pluginConfiguration"]["name"] == plugin["name"]
    assert len(sb["spec"]["schedule"].split()) == 6
    creds = store["spec"]["configuration"]["s3Credentials"]
    for ref in creds.values():
        assert ref["key"] in k8s.SECRET_NAMES[ref["name"]]
    pooler = by_kind(objs, "Pooler")[0]
    assert pooler["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert pooler["metadata"]["name"] == k8s.POOLER
    monitor = by_kind(objs, "PodMonitor")[0]
    assert monitor["spec"]["selector"]["matchLabels"] == {"cnpg.io/cluster": k8s.POSTGRES}


def test_cnpg_sql_follows_the_init_sql_for_other_names(src: k8s.PostgresSources) -> None:
    names = pg.Names(database="authz", owner="az_owner", migrator="az_mig", app="az_app",
                     readonly="az_ro")
    post, app = k8s.cnpg_init_sql(src.init["10-openfga.sql"], names)
    text = "\n".join(post + app)
    assert "openfga" not in text
    assert 'ALTER ROLE "az_mig" IN DATABASE "authz" SET role = \'az_owner\'' in text
    old_post, _ = k8s.cnpg_init_sql(src.init["10-openfga.sql"], names, pg_major=15)
    assert 'GRANT "az_owner" TO "az_mig";' in old_post


def test_the_deploy_role_has_no_delete() -> None:
    for flavor in k8s.FLAVORS:
        role = kd.deploy_role("ns", flavor)
        assert all("delete" not in r["verbs"] and "*" not in r["verbs"] for r in role["rules"])
