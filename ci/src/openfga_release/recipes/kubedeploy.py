"""The Kubernetes deploy: ordered server-side apply that cannot deadlock or lose data.

Plain module (no dagger import). It drives ``kubectl`` (the pipeline copies the binary from
the pinned ``registry.k8s.io/kubectl`` image into the pinned Python image; the tests use
kubectl v1.35.4 built from the same release as their control plane). Why kubectl and not the
Python client: server-side apply with strict field validation, ``kubectl diff``'s dryRun=All
diff with Secret values masked, and the exact error texts users see are kubectl's own; the
official image is the one DESIGN.md names; and one static binary is simpler to pin than the
``kubernetes`` package and its dependency tree.

Order (:func:`deploy`), each step only after the previous one succeeded:

1. Secrets (datastore URIs built with :class:`recipes.dsn.Dsn`, role passwords, preshared
   keys, the PostgreSQL TLS pair), applied from stdin: never in argv or on disk;
2. PostgreSQL, then wait until it is ready (StatefulSet rolled out / CNPG Cluster Ready);
3. the migration Job of this OpenFGA version, then wait until it is Complete; if it fails,
   show its status and its pod's logs (redacted) and stop: the Deployment is not touched;
4. the Deployment (with its Service, PDB, NetworkPolicy), then wait for the rollout; on a
   progress deadline show the events and roll back (re-apply the previous ReplicaSet's
   template with our own field manager, so the next deploy does not conflict with itself);
5. the smoke test against the Service (``standalone/smoke.py`` through a port-forward).

Apply never forces: a field owned by another manager is a 409 conflict, reported with who
owns it. Nothing is ever deleted (no ``--prune``, no delete call at all): PVCs, namespaces
and Secrets survive every failure. A dry run is ``kubectl diff --server-side`` (dryRun=All):
the server computes the result, nothing changes.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import kubernetes as k8s
from . import postgres as pg
from .dsn import Dsn
from .errors import InputError, StepError
from .migrate import redact

Obj = dict[str, Any]

# registry.k8s.io/kubectl: the official image, at the control plane's minor.
KUBECTL_IMAGE = "registry.k8s.io/kubectl:v1.35.4"
KUBECTL_IN_IMAGE = "/bin/kubectl"  # upstream build/server-image/kubectl/Dockerfile: COPY to /bin/
KUBECTL_PATH = "/usr/local/bin/kubectl"  # where the pipeline puts it in the Python image

POSTGRES_READY_TIMEOUT = 900.0  # first boot runs initdb and the init SQL
JOB_TIMEOUT = float(k8s.MIGRATE_DEADLINE + 60)
POLL = 0.5

# The minimal Role the deploy needs in its namespace (docs: README "Kubernetes").
# Server-side apply creates with PATCH, which needs both create and patch; get is what
# kubectl diff and the waits read. Nothing has delete.
_APPLY = ["get", "create", "patch"]
DEPLOY_ROLE_RULES: list[Obj] = [
    {"apiGroups": [""], "resources": ["secrets", "configmaps", "services", "serviceaccounts"],
     "verbs": _APPLY},
    {"apiGroups": ["apps"], "resources": ["statefulsets", "deployments"],
     "verbs": [*_APPLY, "list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": [*_APPLY, "list", "watch"]},
    {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": _APPLY},  # scheduled backups
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": _APPLY},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": _APPLY},
]
CNPG_ROLE_RULES: list[Obj] = [
    {"apiGroups": ["postgresql.cnpg.io"],
     "resources": ["clusters", "poolers", "scheduledbackups"], "verbs": [*_APPLY, "list"]},
    {"apiGroups": ["barmancloud.cnpg.io"], "resources": ["objectstores"], "verbs": _APPLY},
    {"apiGroups": ["monitoring.coreos.com"], "resources": ["podmonitors"], "verbs": _APPLY},
]


def with_backups(spec: k8s.Spec, backup_image: str) -> k8s.Spec:
    """``spec`` with the scheduled backup CronJob (recipes/backup.py) when an image is given:
    the StatefulSet flavor's schedule; CloudNativePG's ScheduledBackup is always rendered."""
    if not backup_image or spec.flavor != "statefulset":
        return spec
    from . import backup  # only when asked: it is large

    return backup.with_kubernetes_backup(spec, image=backup_image)


def deploy_role(namespace: str, flavor: str, name: str = "openfga-release-deployer") -> Obj:
    """The Role to bind the deploy's kubeconfig user to (with a RoleBinding)."""
    rules = DEPLOY_ROLE_RULES + (CNPG_ROLE_RULES if flavor == "cnpg" else [])
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": namespace}, "rules": rules}


class DeployError(StepError):
    """A deploy step failed; ``str()`` names the step and the fix, ``detail`` is redacted."""


# ------------------------------------------------------------------ secrets

@dataclass(frozen=True)
class SecretValues:
    """Everything secret the deploy writes into the cluster (never printed)."""

    migrator_password: str = field(repr=False)
    app_password: str = field(repr=False)
    readonly_password: str = field(repr=False)
    preshared_keys: tuple[str, ...] = field(repr=False)
    tls_crt: str = field(default="", repr=False)
    tls_key: str = field(default="", repr=False)
    ca_crt: str = field(default="", repr=False)
    s3_access_key_id: str = field(default="", repr=False)
    s3_secret_access_key: str = field(default="", repr=False)

    def all(self) -> list[str]:
        values = [self.migrator_password, self.app_password, self.readonly_password,
                  *self.preshared_keys, self.tls_key, self.s3_secret_access_key]
        return [v for v in values if v]

    @classmethod
    def from_dir(cls, directory: Path) -> SecretValues:
        """Files named like the fields (``app-password``, ``preshared-keys``...)."""
        def read(name: str, required: bool = True) -> str:
            path = directory / name
            if not path.is_file():
                if required:
                    raise InputError(f"secret file {name} is missing in {directory}")
                return ""
            return path.read_text().strip("\n")

        keys = tuple(k for k in re.split(r"[,\s]+", read("preshared-keys")) if k)
        return cls(
            migrator_password=read("migrator-password"), app_password=read("app-password"),
            readonly_password=read("readonly-password"), preshared_keys=keys,
            tls_crt=read("tls.crt", False), tls_key=read("tls.key", False),
            ca_crt=read("ca.crt", False),
            s3_access_key_id=read("s3-access-key-id", False),
            s3_secret_access_key=read("s3-secret-access-key", False),
        )


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _secret(spec: k8s.Spec, name: str, data: dict[str, str], type_: str = "Opaque") -> Obj:
    # `data`, not `stringData`: server-side apply tracks ownership of data.<key>, so a key
    # another manager wrote is a conflict instead of a silent overwrite.
    return {"apiVersion": "v1", "kind": "Secret", "type": type_,
            "metadata": {"name": name, "namespace": spec.namespace,
                         "labels": k8s.labels(spec, k8s.PART_OF, "secret")},
            "data": {key: _b64(value) for key, value in data.items()}}


def secret_data(secret: Obj) -> dict[str, str]:
    """A Secret object's values, decoded."""
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def secret_objects(spec: k8s.Spec, values: SecretValues) -> list[Obj]:
    """The Secrets the rendered objects reference, from ``values``. Checked first: the
    PostgreSQL rules for the passwords, OpenFGA's for the preshared keys."""
    names = spec.names
    pg.check_passwords({"migrator": values.migrator_password, "app": values.app_password,
                        "readonly": values.readonly_password}, names)
    from .openfga import preshared_keys_value
    try:
        keys = preshared_keys_value(values.preshared_keys)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if spec.flavor == "statefulset" and not (values.tls_crt and values.tls_key):
        raise InputError(
            "the StatefulSet flavor needs a TLS certificate and key for PostgreSQL (tls.crt, "
            "tls.key; pg_hba.conf refuses every network login without TLS): give them, e.g. "
            "from cert-manager or the postgres recipe's tls_commands"
        )

    def uri(kind: str, host: str, password: str) -> str:
        return Dsn(host=host, database=names.database, user=names.role(kind),
                   password=password, sslmode="require").secret_uri()

    out = [
        _secret(spec, k8s.DATASTORE_SECRET,
                {k8s.URI_KEY: uri("app", k8s.postgres_host(spec), values.app_password)}),
        _secret(spec, k8s.MIGRATOR_DATASTORE_SECRET,
                {k8s.URI_KEY: uri("migrator", k8s.migrate_host(spec),
                                  values.migrator_password)}),
        _secret(spec, k8s.PRESHARED_KEYS_SECRET, {k8s.KEYS_KEY: keys}),
    ]
    passwords = {"migrator": values.migrator_password, "app": values.app_password,
                 "readonly": values.readonly_password}
    if values.tls_crt and values.tls_key:
        tls = {"tls.crt": values.tls_crt, "tls.key": values.tls_key}
        if values.ca_crt:
            tls["ca.crt"] = values.ca_crt
        out.append(_secret(spec, k8s.POSTGRES_TLS_SECRET, tls, "kubernetes.io/tls"))
    if spec.flavor == "statefulset":
        out.append(_secret(spec, k8s.POSTGRES_ROLES_SECRET,
                           {k8s.ROLE_PASSWORD_KEY[kind]: pw for kind, pw in passwords.items()}))
    else:
        out += [_secret(spec, k8s.ROLE_SECRET[kind],
                        {"username": names.role(kind), "password": pw},
                        "kubernetes.io/basic-auth") for kind, pw in passwords.items()]
        if values.s3_access_key_id and values.s3_secret_access_key:
            out.append(_secret(spec, k8s.BACKUP_S3_SECRET, {
                "ACCESS_KEY_ID": values.s3_access_key_id,
                "ACCESS_SECRET_KEY": values.s3_secret_access_key}))
    return out


# ------------------------------------------------------------------ kubectl

Runner = Callable[[list[str], str | None, float], subprocess.CompletedProcess[str]]


def run_process(
    argv: list[str], stdin: str | None, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)


@dataclass
class Kubectl:
    """``kubectl`` for one kubeconfig and namespace; every call's stderr is redacted."""

    binary: str
    kubeconfig: str
    namespace: str
    secrets: Sequence[str] = ()
    runner: Runner = run_process

    def __post_init__(self) -> None:
        # What is secret is also redacted in the base64 form Secret objects carry.
        self.secrets = [*self.secrets, *(_b64(v) for v in self.secrets if len(v) >= 3)]

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--kubeconfig", self.kubeconfig, "--namespace", self.namespace,
                *args]

    def run(self, *args: str, stdin: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = self.runner(self.argv(*args), stdin, timeout)
        proc.stdout = redact(proc.stdout or "", self.secrets)
        proc.stderr = redact(proc.stderr or "", self.secrets)
        return proc

    def get(self, kind: str, name: str) -> Obj | None:
        proc = self.run("get", kind, name, "-o", "json")
        if proc.returncode != 0:
            if "NotFound" in proc.stderr or "not found" in proc.stderr:
                return None
            raise DeployError(explain_kubectl(proc.stderr, f"get {kind}/{name}", self.namespace))
        return dict(json.loads(proc.stdout))

    def list(self, kind: str, selector: str = "", field_selector: str = "") -> list[Obj]:
        args = ["get", kind, "-o", "json"]
        if selector:
            args += ["-l", selector]
        if field_selector:
            args += ["--field-selector", field_selector]
        proc = self.run(*args)
        if proc.returncode != 0:
            raise DeployError(explain_kubectl(proc.stderr, f"list {kind}", self.namespace))
        return list(json.loads(proc.stdout).get("items", []))


_FORBIDDEN = re.compile(
    r'User "([^"]+)" cannot (\w+) resource "([\w/]+)" in API group "([^"]*)"'
    r'(?: in the namespace "([^"]+)")?')
_CONFLICT = re.compile(r'conflicts? with "([^"]+)"(?: using [\w/]+)?:?\s*\n?\s*-?\s*([^\n]*)')


def explain_kubectl(stderr: str, what: str, namespace: str) -> str:
    """One sentence: what failed and the fix, from kubectl's stderr (already redacted)."""
    m = _FORBIDDEN.search(stderr)
    if m:
        user, verb, resource, group, ns = m.groups()
        kind = f"{resource}.{group}" if group else resource
        return (f"{what}: the kubeconfig's user {user} may not {verb} {kind} in namespace "
                f"{ns or namespace}; add the verb '{verb}' on '{resource}' (apiGroup "
                f"'{group}') to its Role (the minimal Role is "
                "openfga_release.recipes.kubedeploy.deploy_role)")
    if "Apply failed with" in stderr or "conflict" in stderr.lower():
        owners = sorted(set(re.findall(r'conflicts? with "([^"]+)"', stderr)))
        fields = re.findall(r"^\s*-\s*(\.\S+)", stderr, re.MULTILINE)
        return (f"{what}: server-side apply conflict (409): field(s) {', '.join(fields) or '?'} "
                f"are owned by another field manager ({', '.join(owners) or 'unknown'}); the "
                "deploy never forces: make that tool stop managing them (or hand them over "
                f"with kubectl apply --server-side --field-manager={k8s.FIELD_MANAGER} "
                "--force-conflicts after checking the change)")
    if re.search(r'namespaces? "[^"]+" not found', stderr):
        return (f"{what}: namespace {namespace} does not exist: create it first (the deploy "
                "never creates or deletes namespaces): kubectl create namespace " + namespace)
    if re.search(r"unknown field|strict decoding error|field not declared in schema", stderr):
        return f"{what}: the API server refused an unknown field: {stderr.strip()[:500]}"
    if "no matches for kind" in stderr:
        return (f"{what}: this cluster does not serve that kind (is the CloudNativePG operator, "
                "and its Barman Cloud plugin, installed?): " + stderr.strip()[:300])
    if "Unauthorized" in stderr or "must be logged in" in stderr:
        return f"{what}: the kubeconfig's credentials were refused (expired or wrong token)"
    if "connection refused" in stderr or "no such host" in stderr or "i/o timeout" in stderr:
        return f"{what}: the API server in the kubeconfig cannot be reached: {stderr.strip()[:300]}"
    return f"{what} failed: {stderr.strip()[:800]}"


def to_stream(objects: Sequence[Obj]) -> str:
    return "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objects)


def apply(kubectl: Kubectl, objects: Sequence[Obj], what: str) -> None:
    """Server-side apply under our field manager, strict validation, never forced."""
    if not objects:
        return
    proc = kubectl.run("apply", "--server-side", f"--field-manager={k8s.FIELD_MANAGER}",
                       "--validate=strict", "-f", "-", stdin=to_stream(objects))
    if proc.returncode != 0:
        raise DeployError(explain_kubectl(proc.stderr, f"applying {what}", kubectl.namespace),
                          proc.stderr)


def diff(kubectl: Kubectl, objects: Sequence[Obj]) -> str:
    """The server-side diff (dryRun=All) of applying ``objects``: changes nothing."""
    proc = kubectl.run("diff", "--server-side", f"--field-manager={k8s.FIELD_MANAGER}",
                       "-f", "-", stdin=to_stream(objects))
    if proc.returncode > 1:
        raise DeployError(explain_kubectl(proc.stderr, "dry run (kubectl diff)",
                                          kubectl.namespace), proc.stderr)
    return proc.stdout


# -------------------------------------------------------------------- waits

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass
class Waiter:
    timeout_scale: float = 1.0
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep

    def until(self, what: str, timeout: float, probe: Callable[[], Any]) -> Any:
        deadline = self.clock() + timeout * self.timeout_scale
        while True:
            result = probe()
            if result:
                return result
            if self.clock() > deadline:
                raise DeployError(f"{what} did not happen within {timeout:.0f}s")
            self.sleep(POLL)


def statefulset_ready(obj: Obj | None) -> bool:
    if not obj:
        return False
    st, want = obj.get("status", {}), obj["spec"].get("replicas", 1)
    return bool(st.get("observedGeneration", 0) >= obj["metadata"]["generation"]
                and st.get("readyReplicas", 0) == want and st.get("updatedReplicas", 0) == want
                and st.get("currentRevision") == st.get("updateRevision"))


def _condition(obj: Obj, kind: str) -> Obj | None:
    for cond in obj.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def cluster_ready(obj: Obj | None) -> bool:
    cond = _condition(obj or {}, "Ready")
    return bool(cond and cond.get("status") == "True")


def job_state(obj: Obj | None) -> str:
    """``Complete``, ``Failed`` or ``Running``."""
    for kind in ("Complete", "Failed"):
        cond = _condition(obj or {}, kind)
        if cond and cond.get("status") == "True":
            return kind
    return "Running"


def rollout_state(obj: Obj | None) -> str:
    """``Done``, ``Failed`` (progress deadline exceeded) or ``Progressing``."""
    if not obj:
        return "Progressing"
    spec, st = obj["spec"], obj.get("status", {})
    if st.get("observedGeneration", 0) < obj["metadata"]["generation"]:
        return "Progressing"
    cond = _condition(obj, "Progressing")
    if cond and cond.get("reason") == "ProgressDeadlineExceeded":
        return "Failed"
    want = spec.get("replicas", 1)
    if (st.get("updatedReplicas", 0) == want and st.get("replicas", 0) == want
            and st.get("availableReplicas", 0) == want):
        return "Done"
    return "Progressing"


# ------------------------------------------------------------------- report

@dataclass
class Report:
    steps: list[str] = field(default_factory=list)
    diff: str = ""

    def add(self, line: str) -> None:
        self.steps.append(line)

    def text(self) -> str:
        return "\n".join(self.steps) + ("\n" + self.diff if self.diff else "")


def _job_failure_detail(kubectl: Kubectl, job: str) -> str:
    lines = []
    obj = kubectl.get("job", job) or {}
    st = obj.get("status", {})
    for cond in st.get("conditions", []) or []:
        lines.append(f"job condition {cond.get('type')}={cond.get('status')} "
                     f"{cond.get('reason', '')}: {cond.get('message', '')}")
    lines.append(f"job status: failed={st.get('failed', 0)} succeeded={st.get('succeeded', 0)}")
    for pod in kubectl.list("pods", selector=f"job-name={job}"):
        name = pod["metadata"]["name"]
        for cs in pod.get("status", {}).get("containerStatuses", []) or []:
            term = cs.get("state", {}).get("terminated") or {}
            if term:
                lines.append(f"pod {name} container {cs['name']}: exit code "
                             f"{term.get('exitCode')} ({term.get('reason', '')}) "
                             f"{term.get('message', '')}".rstrip())
        logs = kubectl.run("logs", f"pod/{name}", "--all-containers", "--tail=100")
        if logs.returncode == 0:
            lines.append(f"--- logs of {name} (last 100 lines, redacted) ---")
            lines.append(logs.stdout.rstrip())
        else:
            lines.append(f"logs of {name} unavailable: {logs.stderr.strip()[:300]}")
    return "\n".join(lines)


def _events(kubectl: Kubectl, names: Sequence[str]) -> str:
    lines = []
    for event in kubectl.list("events"):
        involved = event.get("involvedObject", {})
        if any(involved.get("name", "").startswith(n) for n in names):
            lines.append(f"{involved.get('kind')}/{involved.get('name')}: {event.get('type')} "
                         f"{event.get('reason')}: {event.get('message', '')}")
    return "\n".join(lines[-40:])


def _revision(obj: Obj) -> int:
    return int(obj["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", 0))


def rollback(kubectl: Kubectl, deployment: Obj, waiter: Waiter, timeout: float) -> str:
    """Re-apply the previous ReplicaSet's pod template under our field manager."""
    live = kubectl.get("deployment", deployment["metadata"]["name"])
    if not live:
        return "nothing to roll back: the Deployment is gone"
    current = _revision(live)
    sel = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    older = [rs for rs in kubectl.list("replicasets", selector=sel) if 0 < _revision(rs) < current]
    if not older:
        return "no earlier revision to roll back to (first rollout): the Deployment is left as is"
    previous = max(older, key=_revision)
    template = json.loads(json.dumps(previous["spec"]["template"]))
    template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    template.get("metadata", {}).pop("creationTimestamp", None)
    back = json.loads(json.dumps(deployment))
    back["spec"]["template"] = template
    apply(kubectl, [back], "the rollback")
    waiter.until("the rollback's rollout", timeout,
                 lambda: rollout_state(kubectl.get("deployment",
                                                   deployment["metadata"]["name"])) == "Done")
    return f"rolled back to revision {_revision(previous)} (its pod template, re-applied)"


# ------------------------------------------------------------------- deploy

Smoke = Callable[[Kubectl], str]


def split_openfga(objects: Sequence[Obj]) -> tuple[list[Obj], Obj, list[Obj]]:
    """(ServiceAccount + migration Job, the Job, everything served after it)."""
    job = next(o for o in objects if o["kind"] == "Job")
    before = [o for o in objects if o["kind"] in ("ServiceAccount", "Job")]
    after = [o for o in objects if o["kind"] not in ("ServiceAccount", "Job")]
    after.sort(key=lambda o: o["kind"] == "Deployment")  # Service, PDB, policy first
    return before, job, after


def deploy(
    kubectl: Kubectl,
    spec: k8s.Spec,
    rendered: dict[str, list[Obj]],
    secrets: Sequence[Obj],
    *,
    smoke: Smoke | None = None,
    waiter: Waiter | None = None,
    postgres_timeout: float = POSTGRES_READY_TIMEOUT,
    job_timeout: float = JOB_TIMEOUT,
    rollout_timeout: float | None = None,
) -> Report:
    """Apply ``rendered`` (from :func:`kubernetes.render`) in order; see the module doc."""
    waiter = waiter or Waiter()
    report = Report()
    postgres = rendered[k8s.POSTGRES_BASE[spec.flavor]]
    before, job, after = split_openfga(rendered[k8s.OPENFGA_BASE])
    deployment = next(o for o in after if o["kind"] == "Deployment")

    apply(kubectl, secrets, "the Secrets")
    report.add(f"secrets: applied {len(secrets)}")

    apply(kubectl, postgres, "PostgreSQL")
    try:
        if spec.flavor == "statefulset":
            waiter.until("PostgreSQL StatefulSet ready", postgres_timeout,
                         lambda: statefulset_ready(kubectl.get("statefulset", k8s.POSTGRES)))
        else:
            waiter.until("CloudNativePG Cluster Ready", postgres_timeout,
                         lambda: cluster_ready(kubectl.get("clusters.postgresql.cnpg.io",
                                                           k8s.POSTGRES)))
    except DeployError as exc:
        raise DeployError(
            f"{exc}: the migration Job and the Deployment were not touched. The events below "
            "say why PostgreSQL is not ready (volume binding, scheduling, probes)",
            _events(kubectl, [k8s.POSTGRES, "data-" + k8s.POSTGRES]),
        ) from None
    report.add("postgres: ready")

    apply(kubectl, before, "the migration Job")
    job_name = job["metadata"]["name"]
    state = waiter.until(f"migration Job {job_name} finishing", job_timeout,
                         lambda: (s := job_state(kubectl.get("job", job_name))) != "Running"
                         and s)
    if state == "Failed":
        raise DeployError(
            f"migration Job {job_name} failed: the Deployment was not touched (the running "
            f"version keeps serving). Read the status and logs below, fix the cause, then delete "
            f"the Job (kubectl delete job {job_name}) and deploy again",
            _job_failure_detail(kubectl, job_name),
        )
    report.add(f"migrate: job {job_name} complete")

    apply(kubectl, after, "the OpenFGA Deployment")
    timeout = rollout_timeout or float(spec.progress_deadline + 120)
    name = deployment["metadata"]["name"]
    state = waiter.until(f"Deployment {name} rollout", timeout,
                         lambda: (s := rollout_state(kubectl.get("deployment", name)))
                         != "Progressing" and s)
    if state == "Failed":
        events = _events(kubectl, [name])
        outcome = rollback(kubectl, deployment, waiter, timeout)
        raise DeployError(
            f"Deployment {name} exceeded its progress deadline ({spec.progress_deadline}s) "
            f"without becoming ready: {outcome}. The events below say why its pods did not "
            "get ready (image pull, probes, scheduling); fix and deploy again",
            events,
        )
    report.add(f"openfga: deployment {name} rolled out")
    if smoke is not None:
        report.add("smoke: " + smoke(kubectl))
    return report


def dry_run(kubectl: Kubectl, rendered: dict[str, list[Obj]], secrets: Sequence[Obj]) -> Report:
    """What a deploy would change, from the server (dryRun=All); changes nothing."""
    objects = [*secrets, *(o for objs in rendered.values() for o in objs)]
    report = Report()
    report.diff = diff(kubectl, objects)
    report.add("dry run: no changes" if not report.diff.strip()
               else "dry run: the diff below would be applied")
    return report


def port_forward_smoke(token: str, smoke_script: Path, python: str = sys.executable,
                       timeout: float = 60) -> Smoke:
    """The smoke test through ``kubectl port-forward service/openfga``. Not runnable on a
    kubelet-less control plane (the tests' KWOK cluster): proven against a local server."""
    def run(kubectl: Kubectl) -> str:
        pf = subprocess.Popen(kubectl.argv("port-forward", f"service/{k8s.OPENFGA}",
                                           ":8080", "--address=127.0.0.1"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert pf.stdout is not None
            line = pf.stdout.readline()
            m = re.search(r"127\.0\.0\.1:(\d+)", line)
            if not m:
                err = redact(pf.stderr.read() if pf.stderr else "", kubectl.secrets)
                raise DeployError("port-forward to service/openfga failed: " + err[:300])
            proc = subprocess.run([python, str(smoke_script), "--url",
                                   f"http://127.0.0.1:{m.group(1)}"],
                                  env={"FGA_TOKEN": token, "PATH": "/usr/bin:/bin"},
                                  capture_output=True, text=True, timeout=timeout)
            out = redact(proc.stdout + proc.stderr, [token])
            if proc.returncode != 0:
                raise DeployError("the smoke test against service/openfga failed", out)
            return "passed"
        finally:
            pf.terminate()
            pf.wait(timeout=10)
    return run


# ---------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m openfga_release.recipes.kubedeploy")
    p.add_argument("command", choices=("deploy", "dry-run", "role"))
    p.add_argument("--kubeconfig", default="/run/secrets/kubeconfig")
    p.add_argument("--kubectl", default=KUBECTL_PATH)
    p.add_argument("--secrets-dir", type=Path, default=Path("/run/secrets"))
    p.add_argument("--postgres-dir", type=Path, required=False)
    p.add_argument("--openfga-image", default="")
    p.add_argument("--postgres-image", default=pg.POSTGRES_IMAGE)
    p.add_argument("--namespace", default=k8s.DEFAULT_NAMESPACE)
    p.add_argument("--flavor", default="statefulset", choices=k8s.FLAVORS)
    p.add_argument("--openfga-version", default=k8s.DEFAULT_VERSION)
    p.add_argument("--postgres-memory", default=k8s.Sizes.postgres_memory)
    p.add_argument("--postgres-storage", default=k8s.Sizes.postgres_storage)
    p.add_argument("--storage-class", default="")
    p.add_argument("--openfga-replicas", type=int, default=k8s.Sizes.openfga_replicas)
    p.add_argument("--smoke-script", type=Path, default=None)
    p.add_argument("--backup-image", default="", help="schedule backups with this image")
    for kind, default in (("database", pg.DEFAULT_DATABASE), *pg.DEFAULT_ROLES.items()):
        flag = "--database" if kind == "database" else f"--{kind}-role"
        p.add_argument(flag, dest=kind, default=default)
    args = p.parse_args(argv)
    try:
        if args.command == "role":
            print(yaml.safe_dump(deploy_role(args.namespace, args.flavor), sort_keys=False))
            return 0
        names = pg.Names(database=args.database, owner=args.owner, migrator=args.migrator,
                         app=args.app, readonly=args.readonly)
        spec = k8s.Spec(openfga_image=args.openfga_image, postgres_image=args.postgres_image,
                        namespace=args.namespace, flavor=args.flavor,
                        openfga_version=args.openfga_version, names=names,
                        sizes=k8s.Sizes(postgres_memory=args.postgres_memory,
                                        postgres_storage=args.postgres_storage,
                                        storage_class=args.storage_class,
                                        openfga_replicas=args.openfga_replicas))
        spec = with_backups(spec, args.backup_image)
        src = k8s.PostgresSources.read(args.postgres_dir)
        values = SecretValues.from_dir(args.secrets_dir)
        kubectl = Kubectl(args.kubectl, args.kubeconfig, spec.namespace, values.all())
        secrets = secret_objects(spec, values)
        rendered = k8s.render(spec, src)
        if args.command == "dry-run":
            report = dry_run(kubectl, rendered, secrets)
        else:
            smoke = (port_forward_smoke(values.preshared_keys[0], args.smoke_script)
                     if args.smoke_script else None)
            report = deploy(kubectl, spec, rendered, secrets, smoke=smoke)
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return 1
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
