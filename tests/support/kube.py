"""A real Kubernetes control plane on loopback, built from the Go module proxy.

What runs (no container engine, no kubelet):

- etcd v3.6.16, built from a throwaway module that requires ``go.etcd.io/etcd/server/v3``
  (its own go.mod has ``replace`` directives, so ``go install`` refuses it);
- kube-apiserver, kube-controller-manager, kube-scheduler and kubectl v1.35.4, built from a
  throwaway module that requires ``k8s.io/kubernetes v1.35.4`` and replaces each of its 31
  staging modules with the published ``k8s.io/<name> v0.35.4`` (upstream's go.mod points them
  at ``./staging``, which the proxy does not serve); ``/version`` is stamped like a release;
- KWOK v0.8.0 faking one node and every pod's lifecycle, with the node and pod "fast" stages
  that ship inside the kwok module (read from the module cache at run time) plus the stages a
  test adds (a pod that fails, a pod that never gets Ready).

Everything is built once per machine and cached by version under
``~/.cache/openfga-release/kube-v1.35.4/`` (``tests/support/tools.py`` owns the cache root and
the etcd/kwok pins). A cold build takes 8-13 minutes on two cores; it runs under ``nice`` with
``-p 2`` so the rest of the machine keeps working.

The apiserver runs with the RBAC authorizer, so a token user bound to a Role gets exactly that
Role's verbs: :meth:`ControlPlane.restricted_kubeconfig` makes such a user.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.net import free_port
from tests.support.tools import GO_TOOLS, _go_env, cache_root, ensure_go_tool, locked

KUBE_VERSION = "v1.35.4"
STAGING_VERSION = "v0.35.4"  # the published k8s.io/<staging> modules that match KUBE_VERSION
KUBE_GO_VERSION = "1.25.0"  # the go directive of the throwaway module (upstream's minimum)

# k8s.io/kubernetes' staging modules (its go.mod replaces each with ./staging/src/k8s.io/<name>).
STAGING_MODULES = (
    "api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime", "client-go",
    "cloud-provider", "cluster-bootstrap", "code-generator", "component-base",
    "component-helpers", "controller-manager", "cri-api", "cri-client", "csi-translation-lib",
    "dynamic-resource-allocation", "endpointslice", "externaljwt", "kms", "kube-aggregator",
    "kube-controller-manager", "kube-proxy", "kube-scheduler", "kubectl", "kubelet", "metrics",
    "mount-utils", "pod-security-admission", "sample-apiserver", "sample-cli-plugin",
    "sample-controller",
)  # fmt: skip

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")


def kube_dir() -> Path:
    return cache_root() / f"kube-{KUBE_VERSION}"


def _version_ldflags() -> str:
    major, minor = KUBE_VERSION.lstrip("v").split(".")[:2]
    stamps = {
        "gitVersion": KUBE_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.{key}={value}" for key, value in stamps.items()]
    return " ".join(flags)


def kube_go_mod() -> str:
    """The throwaway go.mod that builds the release binaries from the module proxy."""
    replaces = "\n".join(f"\tk8s.io/{n} => k8s.io/{n} {STAGING_VERSION}" for n in STAGING_MODULES)
    return (
        "module local.test/kube-build\n\n"
        f"go {KUBE_GO_VERSION}\n\n"
        f"require k8s.io/kubernetes {KUBE_VERSION}\n\n"
        f"replace (\n{replaces}\n)\n"
    )


def _run_build(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.run(["nice", "-n", "10", *argv], env=env, cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT)  # fmt: skip
    if proc.returncode != 0:
        tail = log.read_text()[-4000:]
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}); log {log}:\n{tail}")


def ensure_kube_binaries() -> dict[str, Path]:
    """kube-apiserver, kube-controller-manager, kube-scheduler and kubectl, built once."""
    out = kube_dir() / "bin"
    binaries = {name: out / name for name in KUBE_COMMANDS}
    if all(p.exists() for p in binaries.values()):
        return binaries
    with locked(kube_dir() / "build.lock"):
        if all(p.exists() for p in binaries.values()):
            return binaries
        work = kube_dir() / "module"  # generated at run time; never committed
        work.mkdir(parents=True, exist_ok=True)
        (work / "go.mod").write_text(kube_go_mod())
        (work / "go.sum").unlink(missing_ok=True)
        partial = kube_dir() / "bin.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        env = _go_env(GO_TOOLS["kwok"])  # CGO off, local toolchain, -mod=mod
        env["GOFLAGS"] = "-mod=mod -p=2"
        log = kube_dir() / "build.log"
        log.write_text("")
        started = time.monotonic()
        packages = [f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS]
        _run_build(["go", "build", "-trimpath", f"-ldflags={_version_ldflags()}",
                    "-o", str(partial) + "/", *packages], env, work, log)  # fmt: skip
        shutil.rmtree(out, ignore_errors=True)
        partial.rename(out)
        # benchmarks/bench_kube.py reports it: the cold cost of the test cluster.
        (kube_dir() / "build.seconds").write_text(f"{time.monotonic() - started:.1f}\n")
    return binaries


def ensure_etcd() -> Path:
    return ensure_go_tool("etcd")


def ensure_kwok() -> Path:
    return ensure_go_tool("kwok")


def ensure_all() -> dict[str, Path]:
    """Every binary the control plane needs (building what is missing)."""
    found = ensure_kube_binaries()
    return {**found, "etcd": ensure_etcd(), "kwok": ensure_kwok()}


# ------------------------------------------------------------------- KWOK stages

KWOK_MODULE = "sigs.k8s.io/kwok"
# Pods labelled so get a lifecycle of their own (tests use them for failure paths).
FAIL_LABEL = "openfga-release.test/fail"  # Running, then Failed with exit code 1
NEVER_READY_LABEL = "openfga-release.test/never-ready"  # Running, never Ready


def kwok_module_dir() -> Path:
    """The kwok module in the Go module cache (``go install`` put it there)."""
    version = GO_TOOLS["kwok"].version
    gomodcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True,
                                check=True).stdout.strip()
    path = Path(gomodcache) / f"{KWOK_MODULE}@{version}"
    if not path.is_dir():
        env = _go_env(GO_TOOLS["kwok"])
        subprocess.run(["go", "mod", "download", f"{KWOK_MODULE}@{version}"], env=env,
                       check=True, capture_output=True)
    return path


def _stage_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "Stage"]


def _absent(label: str) -> dict[str, Any]:
    return {"key": f'.metadata.labels["{label}"]', "operator": "DoesNotExist"}


def _present(label: str) -> dict[str, Any]:
    return {"key": f'.metadata.labels["{label}"]', "operator": "In", "values": ["true"]}


_NOT_READY = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ProbeFailed
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  type: ContainersReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
"""

_FAILED = """\
{{ $now := Now }}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    terminated:
      exitCode: 1
      finishedAt: {{ $now | Quote }}
      reason: Error
      message: migration failed (a KWOK failure stage)
      startedAt: {{ $now | Quote }}
{{ end }}
phase: Failed
"""


def kwok_stages(forward_port: int = 0) -> str:
    """The node and pod "fast" stages shipped in the kwok module, read at run time, with
    two stages of ours: pods labelled :data:`FAIL_LABEL` fail, :data:`NEVER_READY_LABEL` run
    but never get Ready (the upstream stages are told to leave both alone)."""
    root = kwok_module_dir() / "kustomize" / "stage"
    docs = _stage_docs(root / "node" / "fast" / "node-initialize.yaml")
    for name in ("pod-ready", "pod-complete", "pod-delete"):
        for doc in _stage_docs(root / "pod" / "fast" / f"{name}.yaml"):
            exprs = doc["spec"]["selector"].setdefault("matchExpressions", [])
            if name == "pod-ready":
                exprs.append(_absent(NEVER_READY_LABEL))
            if name == "pod-complete":
                exprs.append(_absent(FAIL_LABEL))
            docs.append(doc)
    pod = {"apiGroup": "v1", "kind": "Pod"}
    alive = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
    docs.append({
        "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": "openfga-release-never-ready"},
        "spec": {"resourceRef": pod,
                 "selector": {"matchExpressions": [
                     alive, _present(NEVER_READY_LABEL),
                     {"key": ".status.phase", "operator": "In", "values": ["Pending"]}]},
                 "next": {"statusTemplate": _NOT_READY}},
    })
    docs.append({
        "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": "openfga-release-fail"},
        "spec": {"resourceRef": pod,
                 "selector": {"matchExpressions": [
                     alive, _present(FAIL_LABEL),
                     {"key": ".status.phase", "operator": "In", "values": ["Running"]}]},
                 "next": {"statusTemplate": _FAILED}},
    })
    if forward_port:
        # `kubectl port-forward` to any pod reaches 127.0.0.1:forward_port on this machine
        # (apiserver -> KWOK's kubelet endpoint -> here): a local process stands in for the
        # container, e.g. the real OpenFGA binary for the deploy's smoke step.
        docs.append({
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterPortForward",
            "metadata": {"name": "openfga-release-loopback"},
            "spec": {"forwards": [{"target": {"port": forward_port, "address": "127.0.0.1"}}]},
        })
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


# -------------------------------------------------------------- control plane

ADMIN_TOKEN_USER = "openfga-release-admin"
NODE_NAME = "kwok-node-0"
NODE_ZONE = "zone-a"


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {proc.stderr[-2000:]}")


def make_certs(pki: Path) -> None:
    """A CA, the apiserver's serving certificate (127.0.0.1) and the service-account keys."""
    pki.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=openfga-release test cluster CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=pki)  # fmt: skip
    _openssl("req", "-new", *ec, "-subj", "/CN=kube-apiserver", "-keyout", "apiserver.key",
             "-out", "apiserver.csr", cwd=pki)  # fmt: skip
    (pki / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
    )
    _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "apiserver.crt",
             cwd=pki)  # fmt: skip
    _openssl("req", "-new", *ec, "-subj", "/CN=kwok", "-keyout", "kwok.key",
             "-out", "kwok.csr", cwd=pki)  # fmt: skip
    (pki / "kwok.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", "kwok.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "kwok.cnf", "-out", "kwok.crt",
             cwd=pki)  # fmt: skip
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", "sa.key", cwd=pki)  # fmt: skip
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def kubeconfig_text(server: str, ca: Path, token: str, user: str, namespace: str = "") -> str:
    context: dict[str, Any] = {"cluster": "test", "user": user}
    if namespace:
        context["namespace"] = namespace
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test", "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode()}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": context}],
        "current-context": "test",
    })


@dataclass
class ControlPlane:
    """A running control plane; :func:`start_control_plane` makes one."""

    root: Path
    bins: dict[str, Path]
    server: str
    admin_kubeconfig: Path
    forward_port: int = 0  # port-forwards to any pod land on 127.0.0.1:forward_port
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _counter: int = 0

    @property
    def kubectl_path(self) -> Path:
        return self.bins["kubectl"]

    def kubectl(self, *args: str, kubeconfig: Path | None = None, stdin: str | None = None,
                check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [str(self.kubectl_path), "--kubeconfig", str(kubeconfig or self.admin_kubeconfig),
                *args]
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, objects: Sequence[dict[str, Any]] | str, *extra: str) -> None:
        text = objects if isinstance(objects, str) else "---\n".join(
            yaml.safe_dump(o, sort_keys=False) for o in objects)
        self.kubectl("apply", "--server-side", "--field-manager=test-setup", *extra, "-f", "-",
                     stdin=text)  # fmt: skip

    def create_namespace(self, prefix: str = "t", enforce: str = "restricted") -> str:
        """A fresh namespace whose Pod Security admission enforces ``enforce``."""
        self._counter += 1
        name = f"{prefix}-{self._counter}-{os.getpid() % 10000}"
        self.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": name, "labels": {"pod-security.kubernetes.io/enforce": enforce,
                                     "pod-security.kubernetes.io/enforce-version": "latest"}}}])
        return name

    def restricted_kubeconfig(self, namespace: str, rules: Sequence[dict[str, Any]],
                              name: str = "deployer") -> Path:
        """A kubeconfig for a service account bound to a Role with exactly ``rules``
        (its token from the TokenRequest API, like a CI robot's)."""
        self._counter += 1
        sa = f"{name}-{self._counter}"
        self.apply([
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": sa, "namespace": namespace}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": sa, "namespace": namespace}, "rules": list(rules)},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": sa, "namespace": namespace},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
             "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]},
        ])
        token = self.kubectl("create", "token", sa, "-n", namespace, "--duration=2h").stdout
        path = self.root / f"kubeconfig-{sa}"
        path.write_text(kubeconfig_text(self.server, self.root / "pki" / "ca.crt",
                                        token.strip(), sa, namespace))
        path.chmod(0o600)
        return path

    def wait_for(self, what: str, predicate: Any, timeout: float = 60, every: float = 0.3) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout:.0f}s")
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}); see {self.root}")
            time.sleep(every)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.processes.clear()


def _ready(url: str, ca: Path, token: str) -> bool:
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca))
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=2) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except OSError:
        return False


def _log_tails(root: Path, chars: int = 1500) -> str:
    out = []
    for log in sorted((root / "logs").glob("*.log")):
        out.append(f"--- {log.name} ---\n{log.read_text(errors='replace')[-chars:]}")
    return "\n".join(out)


def start_control_plane(root: Path, attempts: int = 2) -> ControlPlane:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK with one fake
    node, on 127.0.0.1 under ``root``; returns once the node is Ready. A failed start (a
    loopback port taken between choosing and binding it, on a shared machine) is retried
    once on fresh ports; the error carries every component's log tail."""
    for attempt in range(1, attempts + 1):
        run_root = root / f"run-{attempt}"
        run_root.mkdir(parents=True, exist_ok=True)
        try:
            return _start_control_plane(run_root)
        except Exception as exc:
            if attempt == attempts:
                raise RuntimeError(
                    f"the test control plane did not start ({exc}):\n{_log_tails(run_root)}"
                ) from exc
    raise AssertionError("unreachable")


def _start_control_plane(root: Path) -> ControlPlane:
    bins = ensure_all()
    pki = root / "pki"
    make_certs(pki)
    token = base64.b32encode(os.urandom(20)).decode().lower()
    (pki / "tokens.csv").write_text(f'{token},{ADMIN_TOKEN_USER},1,"system:masters"\n')
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    admin = root / "admin.kubeconfig"
    admin.write_text(kubeconfig_text(server, pki / "ca.crt", token, ADMIN_TOKEN_USER))
    admin.chmod(0o600)
    forward_port, kwok_port = free_port(), free_port()
    (root / "kwok.yaml").write_text(kwok_stages(forward_port))
    cp = ControlPlane(root=root, bins=bins, server=server, admin_kubeconfig=admin,
                      forward_port=forward_port)
    logs = root / "logs"
    logs.mkdir(exist_ok=True)

    def spawn(name: str, argv: list[str]) -> None:
        out = open(logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        cp.processes[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                              cwd=root, start_new_session=True)  # fmt: skip

    try:
        spawn("etcd", [str(bins["etcd"]), "--name", "test", "--data-dir", str(root / "etcd"),
                       "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
                       "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
                       "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                       "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                       "--initial-cluster", f"test=http://127.0.0.1:{peer_port}",
                       "--unsafe-no-fsync", "--log-level", "warn"])  # fmt: skip
        spawn("kube-apiserver", [
            str(bins["kube-apiserver"]),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--endpoint-reconciler-type=none",
            # The fake node's kubelet endpoint is KWOK on 127.0.0.1 (port-forward, logs).
            "--kubelet-preferred-address-types=InternalIP",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
        ])
        cp.wait_for("kube-apiserver /readyz",
                    lambda: _ready(f"{server}/readyz", pki / "ca.crt", token), timeout=120)
        spawn("kube-controller-manager", [
            str(bins["kube-controller-manager"]), f"--kubeconfig={admin}",
            "--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}", "--use-service-account-credentials=false",
            "--concurrent-deployment-syncs=5",
        ])
        spawn("kube-scheduler", [str(bins["kube-scheduler"]), f"--kubeconfig={admin}",
                                 "--bind-address=127.0.0.1", "--secure-port=0",
                                 "--leader-elect=false"])  # fmt: skip
        spawn("kwok", [str(bins["kwok"]), f"--kubeconfig={admin}", "-c", str(root / "kwok.yaml"),
                       "--manage-all-nodes=false",
                       "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                       "--cidr=10.244.0.0/16", "--node-ip=127.0.0.1",
                       f"--node-port={kwok_port}", f"--server-address=127.0.0.1:{kwok_port}",
                       f"--tls-cert-file={pki / 'kwok.crt'}",
                       f"--tls-private-key-file={pki / 'kwok.key'}",
                       "--node-lease-duration-seconds=40"])  # fmt: skip
        cp.apply([{"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": NODE_NAME,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "type": "kwok",
                       "topology.kubernetes.io/zone": NODE_ZONE}}}])

        def node_ready() -> bool:
            node = cp.get_json("node", NODE_NAME)
            conds = node.get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        cp.wait_for("the KWOK node Ready", node_ready, timeout=60)
        # The default ServiceAccount appears once the controller-manager runs.
        cp.wait_for("the default ServiceAccount",
                    lambda: cp.kubectl("get", "sa", "default", "-n", "default",
                                       check=False).returncode == 0, timeout=60)
    except BaseException:
        cp.stop()
        raise
    return cp


@contextmanager
def control_plane(root: Path | None = None) -> Iterator[ControlPlane]:
    """A control plane for the block, torn down (processes and files) after it."""
    tmp = Path(tempfile.mkdtemp(prefix="kube-")) if root is None else root
    cp = start_control_plane(tmp)
    try:
        yield cp
    finally:
        cp.stop()
        if root is None:
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session", name="kube")
def kube_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """The session's control plane (import this fixture into a test module to use ``kube``)."""
    with control_plane(tmp_path_factory.mktemp("kube")) as cp:
        yield cp


if __name__ == "__main__":  # `python -m tests.support.kube`: warm the cache
    started = time.monotonic()
    for name, path in ensure_all().items():
        print(name, path)
    print(f"ready in {time.monotonic() - started:.0f}s")
