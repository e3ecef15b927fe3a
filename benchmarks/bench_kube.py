"""The Kubernetes deploy on the test control plane, and what the control plane costs.

    .venv/bin/python benchmarks/bench_kube.py [--runs 3]

- cold cost of the test cluster: the one-time build of kube-apiserver, controller-manager,
  scheduler, kubectl (v1.35.4), etcd and KWOK, read from the build log's stamp (a fresh
  build takes minutes; rerun it with OPENFGA_RELEASE_CACHE=/tmp/empty to measure again);
- warm cost: start etcd + apiserver + controllers + KWOK to a Ready fake node, and the
  resident memory of the whole control plane;
- apply to finished rollout: the deploy recipe against it (Secrets -> StatefulSet ready ->
  migration Job Complete -> Deployment rolled out), per step, medians over ``--runs``
  fresh namespaces. KWOK makes pods Ready at once, so this is the API and controller side
  of a deploy (what the recipe adds), not image pulls or PostgreSQL's first boot.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "ci" / "src"))
os.environ.setdefault("DAGGER_MAIN_OBJECT", "OpenfgaRelease")

from openfga_release.recipes import kubedeploy as kd  # noqa: E402
from openfga_release.recipes import kubernetes as k8s  # noqa: E402

from tests.support import kube  # noqa: E402

VALUES = kd.SecretValues(  # throwaway values for a throwaway cluster
    migrator_password="Mig-2b7c9d1e4f6a8", app_password="App-5e3f1a9c7b2d4",  # noqa: S106
    readonly_password="Ro-8c6a4e2f0d9b7",  # noqa: S106
    preshared_keys=("psk-Zq9xW3vR7tY5uI1oP4aS",), tls_crt="CERT", tls_key="KEY",
)  # fmt: skip
DIGEST = "registry.example.com/openfga@sha256:" + "1" * 64


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Timed(kd.Waiter):
    """Records when each wait finished."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[tuple[str, float]] = []

    def until(self, what: str, timeout: float, probe):  # type: ignore[no-untyped-def]
        out = super().until(what, timeout, probe)
        self.marks.append((what, time.monotonic()))
        return out


def one_deploy(cp: kube.ControlPlane, src: k8s.PostgresSources) -> dict[str, float]:
    ns = cp.create_namespace("bench")
    cp.apply([{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{ns}"},
               "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "kwok-local",
                        "claimRef": {"namespace": ns, "name": "data-postgres-0"},
                        "hostPath": {"path": f"/tmp/pv-{ns}"}}}])
    spec = k8s.Spec(openfga_image=DIGEST, namespace=ns,
                    sizes=k8s.Sizes(storage_class="kwok-local"))
    kubectl = kd.Kubectl(str(cp.kubectl_path), str(cp.admin_kubeconfig), ns, VALUES.all())
    waiter = Timed()
    start = time.monotonic()
    kd.deploy(kubectl, spec, k8s.render(spec, src), kd.secret_objects(spec, VALUES),
              waiter=waiter)
    end = time.monotonic()
    phases, last = {}, start
    for what, at in waiter.marks:
        phases[what.split()[0] + " " + what.split()[1]] = at - last
        last = at
    phases["total"] = end - start
    return phases


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    log = kube.kube_dir() / "build.seconds"
    if log.exists():
        print(f"cold build of the control plane (recorded): {float(log.read_text()):.0f} s")
    t0 = time.monotonic()
    kube.ensure_all()
    print(f"ensure binaries (warm cache): {time.monotonic() - t0:.2f} s")
    starts, rss = [], []
    src = k8s.PostgresSources.read(REPO / "images" / "postgres")
    deploys: list[dict[str, float]] = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-kube-") as tmp:
            t0 = time.monotonic()
            cp = kube.start_control_plane(Path(tmp))
            try:
                starts.append(time.monotonic() - t0)
                rss.append(rss_mib([p.pid for p in cp.processes.values()]))
                deploys.append(one_deploy(cp, src))
                if i == 0:
                    deploys.append(one_deploy(cp, src))  # a second namespace, same cluster
            finally:
                cp.stop()
    print(f"cluster start to Ready node: median {statistics.median(starts):.2f} s "
          f"(runs: {', '.join(f'{s:.2f}' for s in starts)})")
    print(f"control plane RSS after start: median {statistics.median(rss):.0f} MiB")
    keys = list(deploys[0])
    total = statistics.median(d["total"] for d in deploys)
    print(f"apply to finished rollout ({len(deploys)} deploys), medians:")
    for key in keys:
        med = statistics.median(d[key] for d in deploys)
        print(f"  {key:<28} {med:6.2f} s  {med / total:5.0%}")
    print(f"cluster start / deploy = {statistics.median(starts) / total:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
