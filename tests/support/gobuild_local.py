"""Run the pipeline's OpenFGA build recipe with this machine's Go.

The same :class:`BuildRecipe` steps ``build-openfga`` runs in the Go container:
``go mod download`` of the release, then ``go build`` in the module's root with
the recipe's environment. Only the cache locations differ.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

from openfga_release.recipes.gobuild import BuildRecipe
from openfga_release.recipes.releases import DEFAULT_VERSION, release

from tests.support.tools import cache_root, locked


def go_env(name: str) -> str:
    return subprocess.run(
        ["go", "env", name], check=True, capture_output=True, text=True
    ).stdout.strip()


def recipe_env(recipe: BuildRecipe, gocache: Path, gomodcache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO") and k != "CGO_ENABLED"}
    env.update(recipe.env())
    env.update({"GOCACHE": str(gocache), "GOMODCACHE": gomodcache, "GOPATH": go_env("GOPATH")})
    return env


def run_recipe(
    recipe: BuildRecipe, output: Path, gocache: Path, source_dir: Path | None = None
) -> Path:
    """Build ``recipe`` into ``output``; returns the path. Raises on a failed step."""
    gomodcache = go_env("GOMODCACHE")
    local = dataclasses.replace(recipe, output=str(output))
    env = recipe_env(local, gocache, gomodcache)
    output.parent.mkdir(parents=True, exist_ok=True)
    if source_dir is None:
        subprocess.run(local.download_args(), env=env, check=True, capture_output=True)
        cwd = local.module_dir(gomodcache)
    else:
        cwd = str(source_dir)
    proc = subprocess.run(local.build_args(), env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"go build failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
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
