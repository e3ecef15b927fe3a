"""The module loads the way the engine loads it, rehearsed offline of any engine.

The Python SDK runtime vendors the SDK as ``ci/sdk`` (the pinned ``dagger-io``
source), runs ``uv lock --locked`` / ``uv sync`` against ``ci/uv.lock``, resolves
the ``dagger.mod`` entry point and builds the registration. Each step runs here
with the real tools, so a stale lock or a broken entry point fails in CI, not on
a user's first ``dagger call``. (Only the final ``Module.id`` round-trip to the
engine is replaced, as in tests/plan/test_registration.py.)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import pytest

from tests.support.tools import cache_root, locked

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ENGINE = json.loads((REPO / "dagger.json").read_text())["engineVersion"].lstrip("v")

# Run inside the module's own environment: the entry point, then the registration.
LOAD = r"""
import json, os, anyio, dagger
from importlib.metadata import entry_points
from dagger.mod import default_module
os.environ.setdefault("DAGGER_MAIN_OBJECT", "OpenfgaRelease")
(ep,) = [e for e in entry_points(group="dagger.mod") if e.name == "main_object"]
cls = ep.load()
async def fake_id(self):
    return self
dagger.Module.id = fake_id
reg = anyio.run(default_module()._typedefs)
names = []
def walk(obj):
    for sel in obj._ctx.selections:
        if sel.name == "withObject" and "name" in sel.args:
            names.append(sel.args["name"])
        for v in sel.args.values():
            if hasattr(v, "_ctx"):
                walk(v)
walk(reg)
print(json.dumps({"entry_point": ep.value, "class": cls.__name__, "objects": names}))
"""


def sdk_source() -> Path:
    """The pinned dagger-io sdist, unpacked (what the engine places as ci/sdk), cached."""
    dest = cache_root() / f"dagger-io-sdk-{ENGINE}"
    with locked(cache_root() / f"dagger-io-sdk-{ENGINE}.lock"):
        if not (dest / "pyproject.toml").exists():
            index = httpx.get(
                "https://pypi.org/simple/dagger-io/", timeout=60, follow_redirects=True,
                headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            ).json()  # fmt: skip
            (sdist,) = [f for f in index["files"] if f["filename"] == f"dagger_io-{ENGINE}.tar.gz"]
            data = httpx.get(sdist["url"], timeout=120, follow_redirects=True).content
            assert hashlib.sha256(data).hexdigest() == sdist["hashes"]["sha256"]
            partial = dest.with_name(dest.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                tar.extractall(partial, filter="data")
            (top,) = partial.iterdir()
            shutil.rmtree(dest, ignore_errors=True)
            top.rename(dest)
            shutil.rmtree(partial)
    return dest


def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    assert Path(found).exists(), "uv is a pinned dev dependency (pyproject.toml)"
    return found


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_PYTHON": sys.executable}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("module") / "ci"
    shutil.copytree(REPO / "ci", work, ignore=shutil.ignore_patterns("sdk", ".venv", "__pycache__"))
    shutil.copytree(sdk_source(), work / "sdk")
    # The engine vendors the SDK with its `codegen` workspace member, which the sdist omits.
    # Those tables only serve the SDK's own development and change nothing the module installs.
    project = work / "sdk" / "pyproject.toml"
    text = project.read_text()
    for table in ("[dependency-groups]", "[tool.uv.sources]", "[tool.uv.workspace]"):
        start = text.index(table)
        end = text.find("\n[", start + 1)
        text = text[:start] + (text[end + 1 :] if end != -1 else "")
    project.write_text(text)
    return work


def test_the_lock_is_current_and_the_module_registers(module_dir: Path) -> None:
    locked_run = run([uv(), "lock", "--locked"], module_dir)
    assert locked_run.returncode == 0, locked_run.stderr
    sync = run([uv(), "sync", "--frozen"], module_dir)
    assert sync.returncode == 0, sync.stderr
    loaded = run([str(module_dir / ".venv/bin/python"), "-c", LOAD], module_dir)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    result = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert result["entry_point"] == "openfga_release:OpenfgaRelease"
    assert result["class"] == "OpenfgaRelease"
    assert {"OpenfgaRelease", "Postgres"} <= set(result["objects"])


def test_a_stale_lock_is_caught(module_dir: Path, tmp_path: Path) -> None:
    stale = tmp_path / "ci"
    shutil.copytree(module_dir, stale, ignore=shutil.ignore_patterns(".venv"), symlinks=True)
    project = stale / "pyproject.toml"
    project.write_text(project.read_text().replace('"pyyaml>=6.0",', '"pyyaml>=6.0",\n    "six",'))
    check = run([uv(), "lock", "--locked"], stale)
    assert check.returncode != 0
    assert "lockfile" in (check.stderr + check.stdout).lower()
