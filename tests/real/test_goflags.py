"""The guards read flags as Go does, proven against Go itself (issue 8, classes 1 and 10).

``tests/support/goprobe`` is a small program of ours that parses arguments with Go's
own ``flag`` package (what the go command and the linker use) and prints what it
read. Every spelling in the corpus is read the same way by it and by
:func:`openfga_release.recipes.goflags.parse`. A real ``go build`` with the recipe's
``-ldflags`` value shows a quoted ``-X`` field reaches the linker whole.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from openfga_release.recipes import goflags
from openfga_release.recipes.gobuild import BuildRecipe

pytestmark = pytest.mark.integration

PROBE = Path(__file__).resolve().parents[1] / "support" / "goprobe"
BOOLS = {"a", "v", "x", "trimpath", "s", "w", "race", "msan", "asan", "cover", "n",
         "linkshared", "json"}  # fmt: skip
STRINGS = ("p", "mod", "buildmode", "pgo", "X", "linkmode", "extldflags", "extld", "extar", "H",
           "r", "L", "E", "T", "toolexec", "overlay", "modfile", "gcflags", "ldflags", "tags",
           "o", "C", "buildvcs", "exec", "compiler")  # fmt: skip

CORPUS = [
    ["-v"], ["--v"], ["-v=true"], ["--v=false"], ["-v=0"], ["-v", "-x"],
    ["-p", "4"], ["-p=4"], ["--p", "4"], ["--p=4"], ["-p"],
    ["-trimpath=false"], ["--trimpath"], ["-mod=mod"], ["--mod", "vendor"],
    ["--ldflags=-s -w"], ["-ldflags", "-s"], ["--tags=osusergo"], ["-toolexec", "/bin/true"],
    ["--X", "github.com/openfga/openfga/internal/build.Version=v9.9.9"],
    ["-X=main.x=a=b"], ["-X", "main.x=hello world"], ["-H=freebsd"], ["--buildmode", "pie"],
    ["-linkmode", "external"], ["-extldflags", "-static-pie"],
    ["---x"], ["-=x"], ["-"], ["--"], ["-v", "--", "-x"], ["main.go"], ["-v", "main.go"],
    ["-s", "-w", "-X", "main.a=1"], ["-v=yes"],
]  # fmt: skip


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("goprobe")
    shutil.copytree(PROBE, out / "src")
    binary = out / "goprobe"
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    subprocess.run(["go", "build", "-o", str(binary), "."], cwd=out / "src", env=env, check=True)
    return binary


def go_reads(probe: Path, tokens: list[str]) -> dict:
    proc = subprocess.run([str(probe), *tokens], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def ours(tokens: list[str]) -> dict:
    try:
        flags = goflags.parse(tokens, takes_value=STRINGS)
        read = {}
        for f in flags:
            read[f.name] = str(goflags.is_true(f)).lower() if f.name in BOOLS else f.value
    except goflags.FlagSyntaxError as err:
        return {"error": str(err)}
    return {"flags": read, "rest": []}


@pytest.mark.parametrize("tokens", CORPUS, ids=lambda t: " ".join(t) or "empty")
def test_flags_are_read_as_gos_flag_package_reads_them(probe: Path, tokens: list[str]) -> None:
    go, py = go_reads(probe, tokens), ours(tokens)
    if "error" in py:
        # We refuse what Go rejects, and also where Go stops reading flags (a non-flag,
        # or the "--" terminator): what follows would be packages or files, which the
        # recipe chooses.
        assert "error" in go or go["rest"] or "--" in tokens, (tokens, go)
    else:
        assert go == py, tokens


def test_a_quoted_x_value_reaches_the_linker_whole(probe: Path, tmp_path: Path) -> None:
    recipe = BuildRecipe.create(
        version="v1.22.1-probe.1", ldflags=["-X 'main.greeting=hello world'"]
    )
    ldflags = recipe.link_flags()
    out = tmp_path / "stamped"
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    src = probe.parent / "src"
    subprocess.run(["go", "build", "-ldflags", ldflags, "-o", str(out), "."], cwd=src, env=env,
                   check=True)  # fmt: skip
    said = subprocess.run([str(out), "greeting"], capture_output=True, text=True, check=True)
    assert said.stdout == "hello world"
