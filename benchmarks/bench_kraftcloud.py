"""KraftCloud deploy against the FAKE platform: API round trips and wall time.

    .venv/bin/python benchmarks/bench_kraftcloud.py [--runs 5] [--skip-workloads]

Two settings, both through the official SDK against tests/support/ukc_fake.py
(a contract fake, not KraftCloud):

* API only (the fake's ScriptedRunner: instances run nothing, health comes from
  the fake's routing table): what the deploy logic itself costs, in requests and
  seconds, for a fresh deploy, a no-op redeploy and an upgrade;
* real workloads (tests/support/ukc_workloads.py: PostgreSQL and the OpenFGA
  releases in network namespaces behind the TLS edge; root only): the same three,
  once each, with the deploy program run as its container runs it.

Round trips are exact counts (HTTP requests the SDK sent, from the program's
own counter); seconds are medians on a shared machine, so compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "ci" / "src"))

from openfga_release.recipes.kraftcloud.api import Platform  # noqa: E402
from openfga_release.recipes.kraftcloud.deploy import Deploy, Printer  # noqa: E402
from openfga_release.recipes.kraftcloud.plan import Spec  # noqa: E402
from openfga_release.recipes.kraftcloud.retry import RetryPolicy  # noqa: E402

from tests.support.ukc_fake import UkcFake  # noqa: E402

SECRETS = {"migrator": "bench-Migrator-pw1", "app": "bench-App-pw2", "readonly": "bench-Ro-pw3",
           "keys": "bench-key-0123456789abcdef"}
REG = "index.unikraft.io/bench"
OLD, NEW = "v1.19.0", "v1.22.1"


def api_only(image: str, fake: UkcFake) -> tuple[float, int]:
    async def probe(url: str) -> str:
        return '{"status":"SERVING"}' if fake.routable(url.removeprefix("https://")) else "503"

    async def go() -> tuple[float, int]:
        platform = Platform(fake.base_url, fake.token, RetryPolicy(), log=lambda s: None)
        spec = Spec(openfga_image=image, postgres_image=f"{REG}/openfga-postgres:17",
                    allow_tags=True)
        t = time.perf_counter()
        try:
            await Deploy(platform, spec, SECRETS, Printer([], sink=lambda s: None),
                         smoke=False, health=probe).run()
        finally:
            await platform.aclose()
        return time.perf_counter() - t, platform.counters.round_trips
    return asyncio.run(go())


def bench_api(runs: int) -> dict[str, tuple[float, int]]:
    out: dict[str, list[tuple[float, int]]] = {"fresh": [], "no-op": [], "upgrade": []}
    for _ in range(runs):
        with UkcFake() as fake:
            out["fresh"].append(api_only(f"{REG}/openfga:{OLD}", fake))
            out["no-op"].append(api_only(f"{REG}/openfga:{OLD}", fake))
            out["upgrade"].append(api_only(f"{REG}/openfga:{NEW}", fake))
    return {k: (statistics.median(s for s, _ in v), max(n for _, n in v)) for k, v in out.items()}


def bench_workloads() -> dict[str, tuple[float, int]]:
    from tests.support.gobuild_local import ensure_openfga
    from tests.support.ukc_workloads import Edge, Image, NetnsRunner, run_deploy

    env = {"POSTGRES_MIGRATOR_PASSWORD": SECRETS["migrator"],
           "POSTGRES_APP_PASSWORD": SECRETS["app"],
           "POSTGRES_READONLY_PASSWORD": SECRETS["readonly"],
           "FGA_PRESHARED_KEYS": SECRETS["keys"]}
    images = {f"{REG}/openfga:{v}": Image("openfga", ensure_openfga(v)) for v in (OLD, NEW)}
    images[f"{REG}/openfga-postgres:17"] = Image("postgres")
    runner = NetnsRunner(images)
    fake = UkcFake(runner, host=runner.bridge_ip, ip_prefix=runner.subnet, images=images).start()
    edge = Edge(fake, runner.bridge_ip, 443, runner.work)
    out: dict[str, tuple[float, int]] = {}
    try:
        for label, version in (("fresh", OLD), ("no-op", OLD), ("upgrade", NEW)):
            t = time.perf_counter()
            proc = run_deploy(runner, fake, edge, "deploy",
                              openfga_image=f"{REG}/openfga:{version}",
                              postgres_image=f"{REG}/openfga-postgres:17", secrets=env)
            took = time.perf_counter() - t
            if proc.returncode != 0:
                raise SystemExit(f"{label} failed:\n{proc.stdout}\n{proc.stderr}")
            m = re.search(r"api round trips: (\d+)", proc.stdout)
            out[label] = (took, int(m.group(1)) if m else -1)
    finally:
        edge.close()
        fake.close()
        runner.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-workloads", action="store_true")
    args = ap.parse_args()
    api = bench_api(args.runs)
    print(f"API only (ScriptedRunner), median of {args.runs}:")
    print("| deploy | round trips | seconds |\n| --- | --- | --- |")
    for k, (s, n) in api.items():
        print(f"| {k} | {n} | {s:.2f} |")
    if args.skip_workloads:
        return
    real = bench_workloads()
    print("\nReal workloads (netns, TLS edge), one run each:")
    print("| deploy | round trips | seconds | share of it spent outside the API logic |")
    print("| --- | --- | --- | --- |")
    for k, (s, n) in real.items():
        share = 1 - api[k][0] / s if s else 0.0
        print(f"| {k} | {n} | {s:.1f} | {share:.0%} |")
    print(f"\nupgrade / fresh (real): {real['upgrade'][0] / real['fresh'][0]:.2f}")


if __name__ == "__main__":
    main()
