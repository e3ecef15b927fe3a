"""The Kubernetes objects and deploy against a real control plane (tests/support/kube.py):
etcd, kube-apiserver (RBAC, Pod Security admission), kube-controller-manager, kube-scheduler
v1.35.4 and KWOK faking the node and pod lifecycles. No kubelet: containers never run, so
what is proven is the API side (validation, admission, RBAC, controllers, ordering, waits,
failure handling), not PostgreSQL or OpenFGA inside the pods.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from openfga_release.recipes import kubedeploy as kd
from openfga_release.recipes import kubernetes as k8s

from tests.support import cnpg_schema
from tests.support.kube import (
    FAIL_LABEL,
    KUBE_VERSION,
    NEVER_READY_LABEL,
    ControlPlane,
    kube_fixture,  # noqa: F401  (the session's "kube")
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DIGEST_1 = "registry.example.com/openfga@sha256:" + "1" * 64
DIGEST_2 = "registry.example.com/openfga@sha256:" + "2" * 64
STORAGE_CLASS = "kwok-local"
VALUES = kd.SecretValues(
    migrator_password="Mig-2b7c9d1e4f6a8",
    app_password="App-5e3f1a9c7b2d4",
    readonly_password="Ro-8c6a4e2f0d9b7",
    preshared_keys=("psk-Zq9xW3vR7tY5uI1oP4aS",),
    tls_crt="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    tls_key="-----BEGIN PRIVATE KEY-----\nTLS-KEY-BODY-42\n-----END PRIVATE KEY-----\n",
    ca_crt="-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n",
    s3_access_key_id="AKIATEST", s3_secret_access_key="S3-Secret-Key-77",
)


@pytest.fixture(scope="module")
def src() -> k8s.PostgresSources:
    return k8s.PostgresSources.read(REPO / "images" / "postgres")


@pytest.fixture(scope="module")
def cnpg_crds(kube: ControlPlane) -> None:
    """Our hand-written CRDs for the CloudNativePG kinds (never upstream's)."""
    kube.apply(cnpg_schema.crds())
    for crd in cnpg_schema.crds():
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     f"crd/{crd['metadata']['name']}")


def spec(namespace: str, **kw: Any) -> k8s.Spec:
    kw.setdefault("openfga_image", DIGEST_1)
    kw.setdefault("sizes", k8s.Sizes(storage_class=STORAGE_CLASS))
    kw.setdefault("progress_deadline", 10)
    return k8s.Spec(namespace=namespace, **kw)


def volume_for(kube: ControlPlane, namespace: str) -> None:
    """A static PersistentVolume for the StatefulSet's claim (no provisioner here)."""
    kube.apply([{
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"pv-{namespace}"},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": STORAGE_CLASS,
                 "persistentVolumeReclaimPolicy": "Retain",
                 "claimRef": {"namespace": namespace, "name": "data-postgres-0"},
                 "hostPath": {"path": f"/tmp/pv-{namespace}"}},
    }])


def kubectl_for(kube: ControlPlane, kubeconfig: Path, namespace: str) -> kd.Kubectl:
    return kd.Kubectl(str(kube.kubectl_path), str(kubeconfig), namespace, VALUES.all())


def inventory(kube: ControlPlane, namespace: str) -> set[str]:
    """What must never disappear: the namespace, its Secrets and PVCs."""
    items = {f"namespace/{namespace}"} if kube.kubectl(
        "get", "namespace", namespace, check=False).returncode == 0 else set()
    for kind in ("secrets", "persistentvolumeclaims"):
        for obj in kube.get_json(kind, "-n", namespace)["items"]:
            items.add(f"{kind}/{obj['metadata']['name']}/{obj['metadata']['uid']}")
    return items


def label_pods(objects: list[dict[str, Any]], kind: str, label: str) -> list[dict[str, Any]]:
    out = copy.deepcopy(objects)
    for obj in out:
        if obj["kind"] == kind:
            obj["spec"]["template"]["metadata"]["labels"][label] = "true"
    return out


def fresh(kube: ControlPlane, restricted: bool = True) -> tuple[str, kd.Kubectl]:
    """A namespace (Pod Security: restricted), its volume, and a kubectl for a service account
    bound to exactly the deploy's minimal Role."""
    ns = kube.create_namespace("fga")
    volume_for(kube, ns)
    rules = kd.deploy_role(ns, "statefulset")["rules"]
    kubeconfig = kube.restricted_kubeconfig(ns, rules) if restricted else kube.admin_kubeconfig
    return ns, kubectl_for(kube, kubeconfig, ns)


# ---------------------------------------------------------------- harness

def test_the_control_plane_is_real_and_runs_controllers(kube: ControlPlane) -> None:
    version = json.loads(kube.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == KUBE_VERSION
    ns = kube.create_namespace("smoke", enforce="baseline")
    kube.apply([
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": ns},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                      "containers": [{"name": "web", "image": "nginx:1.27.3"}]}}}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "namespace": ns},
         "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
             {"name": "once", "image": "busybox:1.37.0"}]}}}},
    ])
    kube.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    kube.kubectl("wait", "--for=condition=Complete", "job/once", "-n", ns, "--timeout=60s")
    # RBAC is on: a user with no Role cannot read anything.
    nobody = kube.restricted_kubeconfig(ns, [], name="nobody")
    denied = kube.kubectl("get", "pods", "-n", ns, kubeconfig=nobody, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr


# ------------------------------------------------- every object, strictly

@pytest.mark.parametrize("flavor", k8s.FLAVORS)
def test_every_rendered_object_is_accepted_with_strict_validation(
        kube: ControlPlane, cnpg_crds: None, src: k8s.PostgresSources, flavor: str) -> None:
    ns = kube.create_namespace(f"all-{flavor}")
    s = spec(ns, flavor=flavor)
    objects = [*kd.secret_objects(s, VALUES),
               *(o for objs in k8s.render(s, src).values() for o in objs)]
    kubectl = kubectl_for(kube, kube.admin_kubeconfig, ns)
    kd.apply(kubectl, objects, "everything")
    for obj in objects:
        kind = obj["kind"].lower() + (
            "." + obj["apiVersion"].split("/")[0] if k8s.is_crd_kind(obj) else "")
        assert kubectl.get(kind, obj["metadata"]["name"]) is not None
    # Strict: an unknown field is refused, by the apiserver (and by our CRDs for CNPG kinds).
    for kind in ("Deployment", "Cluster" if flavor == "cnpg" else "StatefulSet"):
        bad = copy.deepcopy(next(o for o in objects if o["kind"] == kind))
        bad["spec"]["replicaz" if kind != "Cluster" else "instancez"] = 1
        with pytest.raises(kd.DeployError, match="unknown field"):
            kd.apply(kubectl, [bad], kind)


def test_the_committed_bases_apply_with_kubectl_k(kube: ControlPlane, cnpg_crds: None) -> None:
    """`kubectl apply -k manifests/<base>` (kustomize built into kubectl), server-side, strict."""
    for base in ("postgres-statefulset", "postgres-cnpg", "openfga"):
        ns = "openfga"
        if kube.kubectl("get", "namespace", ns, check=False).returncode != 0:
            kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": ns, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}])
        out = kube.kubectl("apply", "--server-side", "--validate=strict", "--dry-run=server",
                           "-k", str(REPO / "manifests" / base))
        assert "serverside-applied" in out.stdout or "created" in out.stdout


# ----------------------------------------------------------------- deploy

def test_deploy_in_order_with_the_minimal_role(kube: ControlPlane,
                                               src: k8s.PostgresSources) -> None:
    ns, kubectl = fresh(kube)
    s = spec(ns)
    smoked: list[str] = []

    def smoke(k: kd.Kubectl) -> str:
        # The rollout is finished when the smoke step runs (port-forward needs a kubelet).
        dep = k.get("deployment", k8s.OPENFGA)
        assert kd.rollout_state(dep) == "Done"
        smoked.append(ns)
        return "called after the rollout"

    report = kd.deploy(kubectl, s, k8s.render(s, src), kd.secret_objects(s, VALUES), smoke=smoke)
    assert [line.split(":")[0] for line in report.steps] == [
        "secrets", "postgres", "migrate", "openfga", "smoke"]
    assert smoked == [ns]
    job = kubectl.get("job", k8s.migrate_job_name(s.openfga_version, s.openfga_image))
    assert kd.job_state(job) == "Complete"
    assert kd.statefulset_ready(kubectl.get("statefulset", k8s.POSTGRES))
    # The migration Job finished before the Deployment existed.
    dep = kubectl.get("deployment", k8s.OPENFGA)
    assert dep is not None and job is not None
    assert job["status"]["completionTime"] <= dep["metadata"]["creationTimestamp"]
    # Every object is ours (one field manager), and a second deploy changes nothing.
    managed = kube.get_json("deployment", k8s.OPENFGA, "-n", ns, "--show-managed-fields")
    appliers = {m["manager"] for m in managed["metadata"]["managedFields"]
                if m["operation"] == "Apply"}
    assert appliers == {k8s.FIELD_MANAGER}
    before = inventory(kube, ns)
    kd.deploy(kubectl, s, k8s.render(s, src), kd.secret_objects(s, VALUES))
    assert inventory(kube, ns) == before


def test_a_failed_migration_stops_before_the_deployment(kube: ControlPlane,
                                                        src: k8s.PostgresSources) -> None:
    ns, kubectl = fresh(kube)
    s = spec(ns)
    rendered = k8s.render(s, src)
    rendered["openfga"] = label_pods(rendered["openfga"], "Job", FAIL_LABEL)
    for obj in rendered["openfga"]:
        if obj["kind"] == "Job":
            obj["spec"]["backoffLimit"] = 0  # fail on the first pod (the real one retries twice)
    with pytest.raises(kd.DeployError) as err:
        kd.deploy(kubectl, s, rendered, kd.secret_objects(s, VALUES))
    job = k8s.migrate_job_name(s.openfga_version, s.openfga_image)
    assert f"migration Job {job} failed" in str(err.value)
    assert "Deployment was not touched" in str(err.value)
    assert "exit code 1" in err.value.detail
    assert "logs of" in err.value.detail  # shown, or why they are not (no kubelet here)
    for value in VALUES.all():
        assert value not in str(err.value) + err.value.detail
    assert kubectl.get("deployment", k8s.OPENFGA) is None
    assert {i.split("/")[0] for i in inventory(kube, ns)} >= {"namespace", "secrets",
                                                             "persistentvolumeclaims"}


def test_a_deployment_that_never_gets_ready_is_rolled_back(kube: ControlPlane,
                                                           src: k8s.PostgresSources) -> None:
    ns, kubectl = fresh(kube)
    good = spec(ns)
    kd.deploy(kubectl, good, k8s.render(good, src), kd.secret_objects(good, VALUES))
    before = inventory(kube, ns)
    bad = spec(ns, openfga_image=DIGEST_2)
    rendered = k8s.render(bad, src)
    rendered["openfga"] = label_pods(rendered["openfga"], "Deployment", NEVER_READY_LABEL)
    with pytest.raises(kd.DeployError) as err:
        kd.deploy(kubectl, bad, rendered, kd.secret_objects(bad, VALUES))
    assert "exceeded its progress deadline" in str(err.value)
    assert "rolled back to revision 1" in str(err.value)
    assert "ProgressDeadlineExceeded" in err.value.detail or "openfga" in err.value.detail
    dep = kubectl.get("deployment", k8s.OPENFGA)
    assert dep is not None
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == DIGEST_1
    assert kd.rollout_state(dep) == "Done"
    assert before <= inventory(kube, ns)
    # Our own rollback does not conflict with the next deploy (same field manager).
    fixed = spec(ns, openfga_image=DIGEST_2)
    kd.deploy(kubectl, fixed, k8s.render(fixed, src), kd.secret_objects(fixed, VALUES))
    dep = kubectl.get("deployment", k8s.OPENFGA)
    assert dep is not None
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == DIGEST_2


def test_a_field_owned_by_another_manager_is_a_409_never_forced(
        kube: ControlPlane, src: k8s.PostgresSources) -> None:
    ns, kubectl = fresh(kube)
    kube.kubectl("create", "secret", "generic", k8s.PRESHARED_KEYS_SECRET, "-n", ns,
                 "--from-literal=keys=someone-elses-key-0123456789")
    before = inventory(kube, ns)
    s = spec(ns)
    with pytest.raises(kd.DeployError) as err:
        kd.deploy(kubectl, s, k8s.render(s, src), kd.secret_objects(s, VALUES))
    message = str(err.value)
    assert "conflict (409)" in message and "kubectl-create" in message
    assert "never forces" in message
    secret = kube.get_json("secret", k8s.PRESHARED_KEYS_SECRET, "-n", ns)
    assert "someone-elses-key" in __import__("base64").b64decode(
        secret["data"]["keys"]).decode()
    assert before <= inventory(kube, ns)
    assert kubectl.get("statefulset", k8s.POSTGRES) is None  # stopped at the Secrets


@pytest.mark.parametrize(("group", "resource", "verb"), [
    ("batch", "jobs", "create"),
    ("apps", "deployments", "patch"),
])
def test_a_role_lacking_a_verb_fails_with_its_name(kube: ControlPlane, src: k8s.PostgresSources,
                                                   group: str, resource: str, verb: str) -> None:
    ns = kube.create_namespace("rbac")
    volume_for(kube, ns)
    rules = copy.deepcopy(kd.deploy_role(ns, "statefulset")["rules"])
    for rule in list(rules):  # the same rule without that one verb on that one resource
        if rule["apiGroups"] == [group] and resource in rule["resources"]:
            rule["resources"].remove(resource)
            rules.append({"apiGroups": [group], "resources": [resource],
                          "verbs": [v for v in rule["verbs"] if v != verb]})
            if not rule["resources"]:
                rules.remove(rule)
    kubectl = kubectl_for(kube, kube.restricted_kubeconfig(ns, rules), ns)
    s = spec(ns)
    before = inventory(kube, ns)
    with pytest.raises(kd.DeployError) as err:
        kd.deploy(kubectl, s, k8s.render(s, src), kd.secret_objects(s, VALUES))
    message = str(err.value)
    assert f"may not {verb} {resource}.{group}" in message
    assert f"add the verb '{verb}' on '{resource}'" in message
    assert before <= inventory(kube, ns)


def test_a_dry_run_shows_the_server_diff_and_changes_nothing(
        kube: ControlPlane, src: k8s.PostgresSources) -> None:
    ns, kubectl = fresh(kube)
    s = spec(ns)
    first = kd.dry_run(kubectl, k8s.render(s, src), kd.secret_objects(s, VALUES))
    assert "kind: StatefulSet" in first.diff and "kind: Deployment" in first.diff
    for value in VALUES.all():
        assert value not in first.diff and kd._b64(value) not in first.diff
    assert kubectl.get("statefulset", k8s.POSTGRES) is None
    assert kube.get_json("secrets", "-n", ns)["items"] == [] or all(
        s_["metadata"]["name"] not in k8s.SECRET_NAMES
        for s_ in kube.get_json("secrets", "-n", ns)["items"])
    kd.deploy(kubectl, s, k8s.render(s, src), kd.secret_objects(s, VALUES))
    versions = {o["metadata"]["name"]: o["metadata"]["resourceVersion"]
                for o in kube.get_json("deployments,statefulsets,secrets,jobs", "-n", ns)["items"]}
    same = kd.dry_run(kubectl, k8s.render(s, src), kd.secret_objects(s, VALUES))
    assert same.diff.strip() == ""
    newer = spec(ns, openfga_image=DIGEST_2)
    changed = kd.dry_run(kubectl, k8s.render(newer, src), kd.secret_objects(newer, VALUES))
    assert DIGEST_2 in changed.diff
    after = {o["metadata"]["name"]: o["metadata"]["resourceVersion"]
             for o in kube.get_json("deployments,statefulsets,secrets,jobs", "-n", ns)["items"]}
    assert after == versions


def test_postgres_never_ready_stops_before_the_migration(kube: ControlPlane,
                                                         src: k8s.PostgresSources) -> None:
    ns = kube.create_namespace("nopv")  # no volume for the claim: the pod is never scheduled
    kubectl = kubectl_for(kube, kube.restricted_kubeconfig(
        ns, kd.deploy_role(ns, "statefulset")["rules"]), ns)
    s = spec(ns)
    with pytest.raises(kd.DeployError) as err:
        kd.deploy(kubectl, s, k8s.render(s, src), kd.secret_objects(s, VALUES),
                  postgres_timeout=8)
    assert "PostgreSQL StatefulSet ready did not happen" in str(err.value)
    assert "were not touched" in str(err.value)
    assert "postgres" in err.value.detail  # the scheduler's events about the pod
    assert kubectl.get("job", k8s.migrate_job_name(s.openfga_version, s.openfga_image)) is None
    claims = kube.get_json("pvc", "-n", ns)["items"]
    assert [c["metadata"]["name"] for c in claims] == ["data-postgres-0"]  # kept, Pending


def test_the_command_the_pipeline_runs(kube: ControlPlane, tmp_path: Path) -> None:
    """`python -m openfga_release.recipes.kubedeploy` with secrets as files, as the Dagger
    container runs it (there: kubectl from registry.k8s.io/kubectl; here: the built one)."""
    import subprocess
    import sys

    ns, _ = fresh(kube, restricted=False)
    kubeconfig = kube.restricted_kubeconfig(ns, kd.deploy_role(ns, "statefulset")["rules"])
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name, value in {"migrator-password": VALUES.migrator_password,
                        "app-password": VALUES.app_password,
                        "readonly-password": VALUES.readonly_password,
                        "preshared-keys": ",".join(VALUES.preshared_keys),
                        "tls.crt": VALUES.tls_crt, "tls.key": VALUES.tls_key}.items():
        (secrets / name).write_text(value)
        (secrets / name).chmod(0o400)

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "openfga_release.recipes.kubedeploy", command,
             "--kubeconfig", str(kubeconfig), "--kubectl", str(kube.kubectl_path),
             "--secrets-dir", str(secrets), "--postgres-dir", str(REPO / "images" / "postgres"),
             "--openfga-image", DIGEST_1, "--namespace", ns, "--storage-class", STORAGE_CLASS],
            capture_output=True, text=True, timeout=600,
            env={**__import__("os").environ, "PYTHONPATH": str(REPO / "ci" / "src")})

    dry = run("dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "the diff below would be applied" in dry.stdout
    assert kube.kubectl("get", "statefulset", "postgres", "-n", ns, check=False).returncode != 0
    done = run("deploy")
    assert done.returncode == 0, done.stderr
    assert "openfga: deployment openfga rolled out" in done.stdout
    for value in VALUES.all():
        assert value not in dry.stdout + dry.stderr + done.stdout + done.stderr


def _relay(listen_port: int, target_port: int) -> None:
    """127.0.0.1:listen_port -> 127.0.0.1:target_port, one thread per direction."""
    import socket
    import threading

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen()

    def accept() -> None:
        while True:
            client, _ = server.accept()
            upstream = socket.create_connection(("127.0.0.1", target_port))
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def test_the_smoke_step_reaches_the_service_through_a_port_forward(
        kube: ControlPlane, src: k8s.PostgresSources) -> None:
    """The deploy's last step for real: `kubectl port-forward service/openfga` (apiserver ->
    the fake node's kubelet endpoint, KWOK) and standalone/smoke.py through it. No container
    runs here, so KWOK forwards the pod's port to the real OpenFGA binary on loopback."""
    from openfga_release.recipes.openfga import PRESHARED_KEYS_ENV
    from openfga_release.standalone import smoke as smoke_script

    from tests.support.gobuild_local import ensure_openfga
    from tests.support.openfga_local import run_local

    key = VALUES.preshared_keys[0]
    with run_local(str(ensure_openfga()), {PRESHARED_KEYS_ENV: key}, engine="memory") as srv:
        _relay(kube.forward_port, int(srv.url.rsplit(":", 1)[1]))
        ns, kubectl = fresh(kube)
        s = spec(ns)
        smoke = kd.port_forward_smoke(key, Path(smoke_script.__file__))
        report = kd.deploy(kubectl, s, k8s.render(s, src), kd.secret_objects(s, VALUES),
                           smoke=smoke)
        assert report.steps[-1] == "smoke: passed"
        # A wrong key fails the step with the smoke test's own words, the key never shown.
        wrong_key = "psk-wrong-key-0123456789"
        wrong = kd.port_forward_smoke(wrong_key, Path(smoke_script.__file__))
        with pytest.raises(kd.DeployError, match="smoke test") as err:
            wrong(kubectl)
        assert wrong_key not in str(err.value) + err.value.detail


def test_cnpg_flavor_deploys_in_order_with_its_minimal_role(
        kube: ControlPlane, cnpg_crds: None, src: k8s.PostgresSources) -> None:
    """The CloudNativePG flavor's ordering: the deploy waits for the Cluster's Ready
    condition before the migration Job. No operator runs here (its kinds are our own CRDs):
    this test plays the operator's one part the deploy reads, setting Ready once."""
    import calendar
    import threading
    import time

    ns = kube.create_namespace("cnpg")
    kubeconfig = kube.restricted_kubeconfig(ns, kd.deploy_role(ns, "cnpg")["rules"])
    kubectl = kubectl_for(kube, kubeconfig, ns)
    s = spec(ns, flavor="cnpg")
    ready_at: list[float] = []

    def operator() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if kube.kubectl("get", "clusters.postgresql.cnpg.io", k8s.POSTGRES, "-n", ns,
                            check=False).returncode == 0:
                time.sleep(2)  # the deploy is now waiting on it
                ready_at.append(time.time())
                kube.kubectl("patch", "clusters.postgresql.cnpg.io", k8s.POSTGRES, "-n", ns,
                             "--subresource=status", "--type=merge", "-p",
                             json.dumps({"status": {"conditions": [{
                                 "type": "Ready", "status": "True", "reason": "ClusterIsReady",
                                 "message": "set by the test", "lastTransitionTime":
                                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]}}))
                return
            time.sleep(0.3)

    thread = threading.Thread(target=operator, daemon=True)
    thread.start()
    report = kd.deploy(kubectl, s, k8s.render(s, src), kd.secret_objects(s, VALUES))
    thread.join(timeout=5)
    assert [line.split(":")[0] for line in report.steps] == [
        "secrets", "postgres", "migrate", "openfga"]
    job = kubectl.get("job", k8s.migrate_job_name(s.openfga_version, s.openfga_image))
    assert job is not None and ready_at
    created = calendar.timegm(time.strptime(job["metadata"]["creationTimestamp"],
                                            "%Y-%m-%dT%H:%M:%SZ"))
    assert created >= int(ready_at[0]) - 1  # the Job came after Ready, not before
    for kind in ("poolers", "scheduledbackups"):
        assert kube.get_json(f"{kind}.postgresql.cnpg.io", "-n", ns)["items"]
    assert kube.get_json("objectstores.barmancloud.cnpg.io", "-n", ns)["items"]
    secret = kube.get_json("secret", k8s.ROLE_SECRET["app"], "-n", ns)
    assert secret["type"] == "kubernetes.io/basic-auth"
