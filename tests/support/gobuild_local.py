"""Run the pipeline's OpenFGA build recipe with this machine's Go.

The same :class:`BuildRecipe` steps ``build-openfga`` runs in the Go container:
``go mod download`` of the release, then ``go build`` in the module's root with
the recipe's environment. Only the cache locations differ.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from openfga_release.recipes.gobuild import BuildRecipe
from openfga_release.recipes.releases import DEFAULT_VERSION, release
from openfga_release.standalone import modverify

from tests.support.tools import cache_root, locked

MODVERIFY = str(Path(modverify.__file__))


def go_env(name: str) -> str:
    return subprocess.run(
        ["go", "env", name], check=True, capture_output=True, text=True
    ).stdout.strip()


def recipe_env(recipe: BuildRecipe, gocache: Path, gomodcache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO") and k != "CGO_ENABLED"}
    env.update(recipe.env())
    env.update({"GOCACHE": str(gocache), "GOMODCACHE": gomodcache, "GOPATH": go_env("GOPATH")})
    return env


class StepFailed(RuntimeError):
    """A recipe step exited non-zero; the message carries its stderr."""


def _step(argv: list[str], env: dict[str, str], cwd: str | None = None) -> None:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StepFailed(f"{argv[:3]} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def run_recipe(
    recipe: BuildRecipe,
    output: Path,
    gocache: Path,
    source_dir: Path | None = None,
    gomodcache: str | None = None,
) -> Path:
    """Build ``recipe`` into ``output`` with the pipeline's steps; returns the path.

    A release: download, modverify.py against the pinned hash, copy out of the module
    cache, ``go mod verify``, build (as the Dagger wiring does). Raises on a failed step.
    """
    gomodcache = gomodcache or go_env("GOMODCACHE")
    local = dataclasses.replace(recipe, output=str(output))
    env = recipe_env(local, gocache, gomodcache)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="openfga-src-") as tmp:
        if source_dir is None:
            _step(local.download_args(), env)
            cached = local.module_dir(gomodcache)
            _step([sys.executable, *local.modverify_args(MODVERIFY, cached)[1:]], env)
            src = Path(tmp) / "src"
            shutil.copytree(cached, src)
            _step(local.verify_args(), env, cwd=str(src))
        else:
            src = source_dir
        _step(local.build_args(), env, cwd=str(src))
    return output


def ensure_openfga(version: str = DEFAULT_VERSION) -> Path:
    """The real OpenFGA release binary, built once per machine with the recipe.

    Locked so that parallel test processes (or helpers) build it only once.
    """
    out = cache_root() / "openfga" / version / "openfga"
    if out.exists():
        return out
    with locked(out.parent / ".lock"):
        if not out.exists():
            recipe = BuildRecipe.for_release(release(version))
            tmp = out.with_suffix(".partial")
            run_recipe(recipe, tmp, cache_root() / "go-build")
            tmp.rename(out)
    return out
