"""The release's local real parts, timed: wall time against the sum of its steps, round trips.

    .venv/bin/python benchmarks/bench_release.py

What runs (the same commands the pipeline runs in its containers):
- OCI layouts of the OpenFGA image for linux/amd64 and linux/arm64 holding the real
  release binaries (amd64 from the recipe; arm64 cross-built with the same recipe,
  cached), and of a PostgreSQL stand-in (its SBOM reads this machine's dpkg status);
- ``release images`` (digests read from the layouts);
- SBOMs: 2 binaries + 4 image/platform pairs in one ``sbom.py --batch`` process (as the
  pipeline runs them), compared with six processes in a row;
- ``release finalize`` (checksums.txt, release.json);
- ``release publish`` against distribution's registry v3 on loopback (htpasswd):
  guard, push, tags, read-back, cosign sign, SBOM attestations, verify; then the
  same publish again (a re-run: nothing pushed).
Registry round trips are the requests in the registry's access log, per command.
The release starts with both arches' builds at once (warm Go build cache: a cold build is
bench_build.py's figure); --no-build leaves them out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DAGGER_MAIN_OBJECT", "OpenfgaRelease")

from openfga_release.recipes import publish as pub  # noqa: E402
from openfga_release.recipes import release as rel  # noqa: E402
from openfga_release.recipes import sign  # noqa: E402
from openfga_release.recipes.gobuild import BuildRecipe  # noqa: E402
from openfga_release.recipes.releases import DEFAULT_VERSION, RELEASES, release  # noqa: E402

from tests.support.gobuild_local import ensure_openfga, run_recipe  # noqa: E402
from tests.support.oci_layout import write_layout  # noqa: E402
from tests.support.registry_local import LocalRegistry  # noqa: E402
from tests.support.tools import cache_root, ensure_go_tool, locked  # noqa: E402

SBOM = REPO / "ci" / "src" / "openfga_release" / "standalone" / "sbom.py"
V, DATE = DEFAULT_VERSION, RELEASES[DEFAULT_VERSION].date
USER, PASSWORD, KEY_PASSWORD = "bench", "bench-pass", "bench-key-pass"


def arm64_binary() -> Path:
    out = cache_root() / "openfga" / f"{V}-linux-arm64" / "openfga"
    if not out.exists():
        with locked(out.parent / ".lock"):
            if not out.exists():
                tmp = out.with_suffix(".partial")
                recipe = BuildRecipe.for_release(release(V), "arm64")
                run_recipe(recipe, tmp, cache_root() / "go-build")
                tmp.rename(out)
    return out


class Steps:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def run(self, name: str, fn):
        start = time.perf_counter()
        out = fn()
        self.times[name] = time.perf_counter() - start
        return out


def sh(argv: list[str], env: dict | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reuse-amd64",
        action="store_true",
        help="put the amd64 binary in the arm64 slot (skips the cross build)",
    )
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="leave the (warm) builds of both arches out of the timed release",
    )
    options = parser.parse_args()
    quick, build = options.reuse_amd64, not options.no_build
    amd64 = ensure_openfga()
    binaries = {"linux/amd64": amd64, "linux/arm64": amd64 if quick else arm64_binary()}
    crane, cosign = str(ensure_go_tool("crane")), str(ensure_go_tool("cosign"))
    work = Path(tempfile.mkdtemp(prefix="bench-release-"))
    py_env = dict(os.environ, PYTHONPATH=str(REPO / "ci" / "src"))
    steps = Steps()
    try:
        with LocalRegistry(work / "registry", USER, PASSWORD) as registry:
            sh([cosign, "generate-key-pair"], env=dict(os.environ, COSIGN_PASSWORD=KEY_PASSWORD))
            shutil.move("cosign.key", work / "cosign.key")
            shutil.move("cosign.pub", work / "cosign.pub")
            started = time.perf_counter()
            if build:
                # Both arches at once, as the release starts them (warm Go build cache).
                def build_one(platform: str) -> None:
                    arch = platform.split("/")[1]
                    start = time.perf_counter()
                    out = work / "built" / arch / "openfga"
                    recipe = BuildRecipe.for_release(release(V), arch)
                    run_recipe(recipe, out, cache_root() / "go-build")
                    steps.times[f"go build {platform} (concurrent, warm cache)"] = (
                        time.perf_counter() - start
                    )

                threads = [threading.Thread(target=build_one, args=(p,)) for p in binaries]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()

            def layouts() -> dict[str, Path]:
                out = {"openfga": work / "layouts" / "openfga", "postgres": work / "layouts" / "pg"}
                write_layout(out["openfga"], {p: {"usr/bin/openfga": b.read_bytes()}
                                              for p, b in binaries.items()})  # fmt: skip
                status = Path("/var/lib/dpkg/status").read_bytes()
                write_layout(out["postgres"], {p: {"var/lib/dpkg/status": status + p.encode()}
                                               for p in binaries})  # fmt: skip
                return out

            lay = steps.run("OCI layouts (both platforms, real binaries)", layouts)
            images = json.loads(steps.run("release images (digests from layouts)", lambda: sh(
                [sys.executable, "-m", "openfga_release.recipes.release", "images", "--address",
                 registry.address, "--namespace", "bench", "--version", V,
                 *[f"{k}={v}" for k, v in lay.items()]], env=py_env)))  # fmt: skip
            dist = work / "dist"
            dist.mkdir()
            bi = {}
            for p, b in binaries.items():
                bi[p] = work / f"bi-{p.replace('/', '-')}.json"
                bi[p].write_text(sh(["go", "version", "-m", "-json", str(b)]))
                shutil.copy(b, dist / rel.binary_name(V, p))
            jobs = []
            for p, b in binaries.items():
                jobs.append((f"sbom binary {p}", ["binary", "--name", "openfga", "--platform", p,
                             "--buildinfo", str(bi[p]), "--sha256-of", str(b),
                             "--output", str(dist / rel.binary_sbom_name(V, p))]))  # fmt: skip
                for name, entry in images.items():
                    extra = (
                        ["--buildinfo", str(bi[p]), "--binary-sha256-of", str(b)]
                        if name == "openfga"
                        else ["--dpkg-status", "/var/lib/dpkg/status"]
                    )
                    jobs.append((f"sbom image {name} {p}", [
                        "image", "--name", entry["repository"], "--platform", p,
                        "--sha256", entry["platforms"][p][7:], *extra,
                        "--output", str(dist / rel.image_sbom_name(name, V, p))]))  # fmt: skip

            batch = [[*args, "--version", V, "--date", DATE] for _, args in jobs]
            (work / "sbom-jobs.json").write_text(json.dumps(batch))
            steps.run("SBOMs: sbom.py --batch (6 documents, one process, as the pipeline)",
                      lambda: sh([sys.executable, str(SBOM), "--batch",
                                  str(work / "sbom-jobs.json")]))  # fmt: skip
            (work / "images.json").write_text(json.dumps(images))
            steps.run("release finalize (checksums.txt, release.json)", lambda: sh(
                [sys.executable, "-m", "openfga_release.recipes.release", "finalize", str(dist),
                 "--version", V, "--date", DATE, "--images", str(work / "images.json")],
                env=py_env))  # fmt: skip

            per_command: dict[str, int] = {}
            key_pem = (work / "cosign.key").read_text()

            def runner(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
                before = len(registry.requests())
                env = dict(os.environ, DOCKER_CONFIG=str(work / "docker"),
                           COSIGN_PASSWORD=KEY_PASSWORD, COSIGN_PRIVATE_KEY=key_pem)  # fmt: skip
                proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env)
                key = " ".join(Path(argv[0]).name.split() + argv[1:2])
                per_command[key] = per_command.get(key, 0) + len(registry.requests()) - before
                return proc.returncode, proc.stdout, proc.stderr

            sboms = {n: {p: str(dist / rel.image_sbom_name(n, V, p)) for p in binaries}
                     for n in images}  # fmt: skip
            request = {"address": registry.address, "namespace": "bench", "version": V,
                       "latest": True, "crane": crane, "cosign": cosign, "sign": True,
                       "images": {k: str(v) for k, v in lay.items()}, "sboms": sboms,
                       "public_key": str(work / "cosign.pub")}  # fmt: skip
            env = {rel.USERNAME_ENV: USER, rel.PASSWORD_ENV: PASSWORD}
            result = steps.run("publish + sign + attest + verify", lambda: rel.run_publish(
                request, runner, env))  # fmt: skip
            wall = time.perf_counter() - started
            separate = time.perf_counter()
            for _, args in jobs:  # the same six, one process each (for comparison only)
                sh([sys.executable, str(SBOM), *args, "--version", V, "--date", DATE])
            separate = time.perf_counter() - separate
            first_trips = dict(per_command)
            per_command.clear()
            rerun = steps.run("(re-run) publish, same content", lambda: rel.run_publish(
                dict(request, sign=False), runner, env))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)

    total = sum(v for k, v in steps.times.items() if not k.startswith("(re-run)"))
    print(f"\nrelease {V}, local real parts ({os.cpu_count()} CPUs)\n")
    print("| step | seconds |\n| --- | --- |")
    for name, seconds in steps.times.items():
        print(f"| {name} | {seconds:.2f} |")
    print("\n| figure | value |\n| --- | --- |")
    print(f"| sum of steps (release) | {total:.2f} s |")
    print(f"| release wall time | {wall:.2f} s |")
    print(f"| **wall / sum** | **{wall / total:.2f}** |")
    batch_time = next(v for k, v in steps.times.items() if k.startswith("SBOMs"))
    print(f"| SBOMs: one batch process / six processes in a row | {batch_time / separate:.2f} |")
    print(f"| registry requests, first publish (all) | {sum(first_trips.values())} |")
    for key, count in sorted(first_trips.items()):
        print(f"|   {key} | {count} |")
    print(f"| registry requests, re-run (same digests) | {sum(per_command.values())} |")
    print(f"| commands | first {result['commands']}, re-run {rerun['commands']} |")
    assert all(i["signed"] for i in result["images"].values())
    assert sign.COSIGN_VERSION and pub.CRANE_VERSION


if __name__ == "__main__":
    main()
