"""The real pgx, as OpenFGA v1.22.1 links it, reading datastore URIs: ``pgxprobe``.

``tests/support/pgxprobe/`` is a small Go program of ours (go.mod pins
github.com/jackc/pgx/v5 at the version OpenFGA v1.22.1's go.mod requires). It is
built once per source hash under ``~/.cache/openfga-release/tools/`` and reads
JSON lines ``{"uri": ..., "env": {...}}``, answering for each what
``pgx.ParseConfig`` decided: every connection attempt (host, port, TLS or not),
the user and database; the same after OpenFGA's migrate rewrite of the URI; and
the user Go's ``url.Parse`` sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.tools import cache_root, locked

SOURCE = Path(__file__).with_name("pgxprobe")
PGX_VERSION = "v5.11.0"  # github.com/openfga/openfga v1.22.1 go.mod
OPENFGA_VERSION = "v1.22.1"


def _source_hash() -> str:
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        digest.update(name.encode() + b"\0" + (SOURCE / name).read_bytes())
    return digest.hexdigest()[:16]


def ensure_pgxprobe() -> Path:
    """The built probe (seconds warm; a minute cold, fetching pgx from the module proxy)."""
    out_dir = cache_root() / "tools" / f"pgxprobe-{PGX_VERSION}-{_source_hash()}"
    binary = out_dir / "pgxprobe"
    if binary.exists():
        return binary
    with locked(out_dir.with_suffix(".lock")):
        if binary.exists():
            return binary
        env = {k: v for k, v in os.environ.items() if k not in ("GOFLAGS", "GOOS", "GOARCH")}
        env.update({"CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"})
        with tempfile.TemporaryDirectory(prefix="pgxprobe-") as tmp:
            for name in ("main.go", "go.mod", "go.sum"):
                shutil.copy(SOURCE / name, Path(tmp) / name)
            partial = Path(tmp) / "pgxprobe"
            proc = subprocess.run(
                ["go", "build", "-trimpath", "-o", str(partial), "."],
                cwd=tmp, env=env, capture_output=True, text=True,
            )  # fmt: skip
            if proc.returncode != 0:
                raise RuntimeError(f"building pgxprobe failed:\n{proc.stderr[-4000:]}")
            out_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(str(partial), binary)
    return binary


def probe(cases: Sequence[tuple[str, Mapping[str, str]]]) -> list[dict[str, Any]]:
    """What the real pgx makes of each ``(uri, PG* env)``; HOME is an empty directory."""
    lines = "".join(json.dumps({"uri": uri, "env": dict(env)}) + "\n" for uri, env in cases)
    with tempfile.TemporaryDirectory(prefix="pgxprobe-home-") as home:
        proc = subprocess.run(
            [str(ensure_pgxprobe())], input=lines, capture_output=True, text=True, timeout=120,
            env={"PATH": "/usr/bin:/bin", "HOME": home},
        )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"pgxprobe failed:\n{proc.stderr[-4000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines()]
