"""Build benchmarks, as ratios measured in one run (the machines are shared and noisy).

    .venv/bin/python benchmarks/bench_build.py            # all figures
    .venv/bin/python benchmarks/bench_build.py --skip-build  # sizes and import time only

Figures:
- cold vs warm build of the recipe: a fresh Go build cache, then the same cache
  again (what a Dagger cache-volume hit gives). Module downloads are warm in both.
- binary size and the size of the image layout (what the scratch image holds).
- import time of the module package against a bare ``import dagger``: every
  ``dagger call`` pays it before the first function runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DAGGER_MAIN_OBJECT", "OpenfgaRelease")

from openfga_release.recipes import image  # noqa: E402
from openfga_release.recipes.gobuild import BuildRecipe  # noqa: E402
from openfga_release.recipes.releases import DEFAULT_VERSION, RELEASES  # noqa: E402

from tests.support.gobuild_local import run_recipe  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_build(work: Path) -> dict[str, float]:
    recipe = BuildRecipe.for_release(RELEASES[DEFAULT_VERSION])
    cache = work / "gocache"
    cold = timed(lambda: run_recipe(recipe, work / "cold", cache))
    warm = timed(lambda: run_recipe(recipe, work / "warm", cache))
    return {"cold_s": cold, "warm_s": warm, "cold_over_warm": cold / warm}


def dir_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def bench_sizes(binary: Path, work: Path) -> dict[str, float]:
    root = work / "rootfs"
    overlay = REPO / "images" / "openfga" / "rootfs"
    for cmd in image.layout_commands(
        str(root), str(binary), "/etc/ssl/certs/ca-certificates.crt", str(overlay)
    ):
        subprocess.run(cmd, check=True)
    return {"binary_mib": binary.stat().st_size / 2**20, "layout_mib": dir_size(root) / 2**20}


def bench_import(runs: int) -> dict[str, float]:
    """Whole interpreter starts, alternating the two statements so drift hits both alike."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "ci" / "src")}
    statements = {"import_dagger_s": "import dagger", "import_module_s": "import openfga_release"}
    samples: dict[str, list[float]] = {key: [] for key in statements}
    for _ in range(runs):
        for key, statement in statements.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", statement], check=True, env=env)
            samples[key].append(time.perf_counter() - start)
    out = {key: statistics.median(values) for key, values in samples.items()}
    out["module_over_dagger"] = out["import_module_s"] / out["import_dagger_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--import-runs", type=int, default=15)
    args = parser.parse_args()
    print(
        f"# {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
        f"{time.strftime('%Y-%m-%d')}, OpenFGA {DEFAULT_VERSION}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        figures: dict[str, float] = {}
        if not args.skip_build:
            figures |= bench_build(work)
            binary = work / "warm"
        else:
            from tests.support.gobuild_local import ensure_openfga

            binary = ensure_openfga()
        figures |= bench_sizes(binary, work)
        figures |= bench_import(args.import_runs)
        shutil.rmtree(work / "rootfs", ignore_errors=True)
    for key, value in figures.items():
        print(f"{key:>20}: {value:.3f}")


if __name__ == "__main__":
    main()
