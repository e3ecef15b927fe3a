"""Check a Go module's extracted source against its pinned ``h1:`` hash.

A lone script (standard library only): the pipeline copies it into a pinned
Python container and runs it on the release source *before* ``go build``, so
a module cache that was modified after the download (a poisoned shared cache
volume) can never reach a release binary. The hash is Go's own "h1" directory
hash (golang.org/x/mod/sumdb/dirhash.Hash1), the value ``go.sum`` and the
checksum database record for the module's zip::

    python3 modverify.py --module github.com/openfga/openfga --version v1.22.1 \
        --sum h1:gl5DiX841ZK3GSTAbgUUYEpiAfAK4EZFMQYW1NQmK8U= /src
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import sys
from pathlib import Path


class ModuleModified(ValueError):
    """The source differs from what the checksum database recorded for the release."""


def files_of(root: Path) -> list[Path]:
    """Every regular file under ``root`` (a symlink or special file is an error)."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                raise ModuleModified(f"{path.relative_to(root)} is not a regular file")
        out.extend(Path(dirpath) / name for name in filenames)
    return out


def hash1(root: Path, prefix: str) -> str:
    """dirhash.Hash1 of ``root`` with file names ``<prefix>/<relative path>``."""
    lines = []
    for path in files_of(root):
        name = f"{prefix}/{path.relative_to(root).as_posix()}"
        if "\n" in name:
            raise ModuleModified(f"file name {name!r} contains a newline")
        lines.append((name, hashlib.sha256(path.read_bytes()).hexdigest()))
    summary = "".join(f"{digest}  {name}\n" for name, digest in sorted(lines))
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def verify(root: Path, module: str, version: str, expected: str) -> str:
    got = hash1(root, f"{module}@{version}")
    if got != expected:
        raise ModuleModified(
            f"the source of {module}@{version} is not the released one (hash {got}, the "
            f"checksum database says {expected}): the module cache was modified after the "
            "download. Refusing to build; clear the Go module cache volume and build again"
        )
    return got


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--module", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--sum", required=True, help="the pinned h1: hash")
    p.add_argument("dir", type=Path)
    args = p.parse_args(argv)
    try:
        got = verify(args.dir, args.module, args.version, args.sum)
    except (ModuleModified, OSError) as err:
        print(f"modverify: {err}", file=sys.stderr)
        return 1
    print(f"modverify: {args.module}@{args.version} {got} matches the pinned hash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
