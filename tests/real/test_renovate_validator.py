"""renovate.json checked by Renovate's own validator (npm package ``renovate``, pinned).

Installed once per machine with npm into the cache (``--ignore-scripts``: the
optional native ``re2`` build is skipped and Renovate falls back to JavaScript
regular expressions, which it says in a warning). About 2 minutes cold here,
7 s warm. A broken copy of the config must be refused, so the pass means
something.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import cache_root, locked

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RENOVATE_VERSION = "44.121.2"


def validator() -> Path:
    npm = shutil.which("npm")
    assert npm, "npm (Node.js 20+) is needed to install Renovate's validator"
    prefix = cache_root() / f"renovate-{RENOVATE_VERSION}"
    binary = prefix / "node_modules" / ".bin" / "renovate-config-validator"
    if binary.exists():
        return binary
    with locked(cache_root() / f"renovate-{RENOVATE_VERSION}.lock"):
        if not binary.exists():
            prefix.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts",
                 "--prefix", str(prefix), f"renovate@{RENOVATE_VERSION}"],
                check=True, capture_output=True, timeout=900,
            )  # fmt: skip
    return binary


def validate(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(validator()), "--strict"], cwd=directory, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_renovates_own_validator_accepts_the_config() -> None:
    proc = validate(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Config validated successfully" in proc.stdout + proc.stderr


def test_and_refuses_a_broken_one(tmp_path: Path) -> None:
    config = json.loads((ROOT / "renovate.json").read_text())
    config["customManagers"][0]["datasourceTemplat"] = "docker"  # a typo in an option name
    (tmp_path / "renovate.json").write_text(json.dumps(config))
    proc = validate(tmp_path)
    assert proc.returncode != 0
    assert "datasourceTemplat" in proc.stdout + proc.stderr
