"""Argument types shared by several functions: declared once, with real defaults,
so ``dagger call ... --help`` shows the same words and values everywhere."""

from __future__ import annotations

from typing import Annotated

import dagger
from dagger import DefaultPath, Doc

Version = Annotated[
    str,
    Doc("OpenFGA release tag; with --source, a label for the fork build such as v1.22.1-acme.1"),
]
Source = Annotated[
    dagger.Directory | None, Doc("an OpenFGA checkout or fork to build instead of the release")
]
Commit = Annotated[str | None, Doc("git commit stamped into the binary (default: the release's)")]
Date = Annotated[
    str | None, Doc("RFC 3339 time stamped into the binary and labels (default: the tag's)")
]
GoImage = Annotated[str, Doc("Go toolchain image, pinned to a full version or a digest")]
Arch = Annotated[str, Doc("target architecture: amd64 or arm64")]
EngineArch = Annotated[str, Doc("amd64 or arm64 (default: the engine's own platform)")]
Overlay = Annotated[
    dagger.Directory | None,
    Doc("files copied into the OpenFGA image root (they may not replace the binary or CA bundle)"),
    DefaultPath("/images/openfga/rootfs"),
]
PostgresConfig = Annotated[
    dagger.Directory | None,
    Doc("the PostgreSQL config, init scripts and start script (images/postgres)"),
    DefaultPath("/images/postgres"),
]
Memory = Annotated[str, Doc("memory the PostgreSQL config is sized for, e.g. 1GiB")]
MaxConnections = Annotated[int, Doc("PostgreSQL max_connections")]
PostgresBase = Annotated[str, Doc("official postgres image (Debian), pinned")]
Database = Annotated[str, Doc("database for OpenFGA")]
OwnerRole = Annotated[str, Doc("NOLOGIN role that owns the schema")]
MigratorRole = Annotated[str, Doc("LOGIN role that runs migrate (acts as the owner)")]
AppRole = Annotated[str, Doc("LOGIN role of openfga run: rows only")]
ReadonlyRole = Annotated[str, Doc("LOGIN role that only reads (reports, backups)")]
Secret = Annotated[dagger.Secret, Doc("a secret (env://VAR, file://path, cmd://...)")]
