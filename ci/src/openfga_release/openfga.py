"""Dagger wiring for OpenFGA: binary -> checked binary -> image -> service, and the
smoke runner. Reused by every concern (migrate, e2e, publish, deploys).

Only lazy pipelines are built here; every rule lives in ``recipes/`` (the build
recipe and its guards, the image layout, the server's environment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import dagger
from dagger import dag

from .recipes import image as layout
from .recipes import openfga as server
from .recipes import refs
from .recipes.gobuild import BuildRecipe
from .recipes.refs import PYTHON_IMAGE
from .recipes.releases import check_go_image, to_epoch
from .standalone import smoke

GOMODCACHE = "/go/pkg/mod"
GOCACHE = "/root/.cache/go-build"
SMOKE_REQUIREMENTS = list(refs.HTTPX)  # smoke.py needs only httpx beside the stdlib
ALIAS = "openfga"  # the host name a bound OpenFGA service gets


def standalone(name: str) -> str:
    """The text of a standalone script, to copy into a container."""
    return resources.files(__package__).joinpath("standalone", name).read_text()


def checker(script: str) -> dagger.Container:
    """The pinned Python with one standalone check script at /check/<script>."""
    return dag.container().from_(PYTHON_IMAGE).with_new_file(f"/check/{script}", standalone(script))


@dataclass(frozen=True)
class Build:
    """One OpenFGA build: the validated recipe and the inputs it runs on."""

    recipe: BuildRecipe
    source: dagger.Directory | None
    go_image: str
    overlay: dagger.Directory | None

    def __post_init__(self) -> None:
        check_go_image(self.go_image)


async def engine_arch() -> str:
    """The engine's own architecture, so migrate and the e2e check run natively."""
    platform = str(await dag.default_platform())  # e.g. linux/arm64/v8
    return platform.split("/")[1]


def _cache_key(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", ref)


def go(build: Build) -> dagger.Container:
    """The pinned Go toolchain with named module and build caches and the recipe's env."""
    ctr = (
        dag.container()
        .from_(build.go_image)
        .with_mounted_cache(GOMODCACHE, dag.cache_volume("openfga-release-gomod"))
        .with_mounted_cache(
            GOCACHE, dag.cache_volume(f"openfga-release-gobuild-{_cache_key(build.go_image)}")
        )
        .with_env_variable("GOMODCACHE", GOMODCACHE)
        .with_env_variable("GOCACHE", GOCACHE)
    )
    for name, value in build.recipe.env().items():
        ctr = ctr.with_env_variable(name, value)
    return ctr


def release_source(build: Build) -> dagger.Directory:
    """The release's module source, downloaded into the shared cache and copied out only
    once modverify.py proves it is byte for byte what the checksum database recorded."""
    recipe = build.recipe
    downloaded = (
        go(build).with_exec(recipe.download_args()).directory(recipe.module_dir(GOMODCACHE))
    )
    return (
        checker("modverify.py")
        .with_directory("/src", downloaded)
        .with_exec(recipe.modverify_args("/check/modverify.py", "/src"))
        .directory("/src")
    )


def built(build: Build) -> dagger.File:
    """The unchecked binary: ``go build`` of the verified release source or of ``source``.

    Built from a copy at /src, never inside the shared module cache; a release's
    dependencies are checked against their recorded hashes first (go mod verify)."""
    recipe = build.recipe
    source = build.source if build.source is not None else release_source(build)
    ctr = go(build).with_directory("/src", source).with_workdir("/src")
    if build.source is None:
        ctr = ctr.with_exec(recipe.verify_args())
    return ctr.with_exec(recipe.build_args()).file(recipe.output)


def checked(binary: dagger.File, recipe: BuildRecipe) -> dagger.File:
    """The binary, returned only if elfcheck.py proves it static, non-PIE, for ``arch``,
    built with the recipe's settings and stamped with what the labels claim."""
    return (
        checker("elfcheck.py")
        .with_file("/check/openfga", binary)
        .with_exec(recipe.elfcheck_args("/check/elfcheck.py", "/check/openfga"))
        .file("/check/openfga")
    )


def binary(build: Build) -> dagger.File:
    return checked(built(build), build.recipe)


def image(build: Build) -> dagger.Container:
    """A scratch OCI image: checked binary, CA bundle, writable /tmp, non-root user."""
    recipe = build.recipe
    work = (
        dag.container()
        .from_(build.go_image)  # has coreutils and the Debian CA bundle
        .with_file("/in/openfga", binary(build))
    )
    if build.overlay is not None:
        work = work.with_directory("/in/overlay", build.overlay)
    for cmd in layout.layout_commands(
        "/rootfs", "/in/openfga", layout.CA_BUNDLE_PATH, "/in/overlay" if build.overlay else None
    ):
        work = work.with_exec(cmd)
    # File times are the release date, or 0 when none is known: never the clock.
    epoch = to_epoch(recipe.date) if recipe.date else 0
    rootfs = work.directory("/rootfs").with_timestamps(epoch)

    ctr = (
        dag.container(platform=dagger.Platform(f"linux/{recipe.arch}"))
        .with_rootfs(rootfs)
        .with_user(layout.USER)
        .with_entrypoint(layout.ENTRYPOINT)
        .with_default_args(layout.DEFAULT_ARGS)
    )
    for port, what in server.PORTS.items():
        ctr = ctr.with_exposed_port(port, description=what)
    for name, value in layout.labels(recipe.version, recipe.commit, recipe.date).items():
        ctr = ctr.with_label(name, value)
    return ctr


def service(
    openfga: dagger.Container,
    datastore_uri: str,
    password: dagger.Secret,
    key: dagger.Secret,
    marker: str,
) -> dagger.Service:
    """``openfga run`` as a least-privilege role: preshared keys, no playground, JSON logs.

    ``datastore_uri`` holds no password (it comes from ``password``, a secret);
    ``marker`` ties the service to what it follows (e.g. the schema revision),
    outside the OPENFGA_* names the server reads.
    """
    ctr = openfga
    for name, value in server.server_env().items():
        ctr = ctr.with_env_variable(name, value)
    return (
        ctr.with_env_variable(server.URI_ENV, datastore_uri)
        .with_secret_variable(server.PASSWORD_ENV, password)
        .with_secret_variable(server.PRESHARED_KEYS_ENV, key)
        .with_env_variable("SERVICE_MARKER", marker)
        .with_exposed_port(server.HTTP_PORT)
        .as_service(args=server.server_command())
    )


def smoke_runner(token: dagger.Secret | None) -> dagger.Container:
    """A pinned Python with httpx and smoke.py; the key arrives only as a secret."""
    ctr = (
        dag.container()
        .from_(PYTHON_IMAGE)
        .with_mounted_cache("/root/.cache/pip", dag.cache_volume("openfga-release-pip"))
        .with_exec(["pip", "install", "--disable-pip-version-check", *SMOKE_REQUIREMENTS])
        .with_new_file("/smoke/smoke.py", standalone("smoke.py"))
    )
    if token is not None:
        ctr = ctr.with_secret_variable(smoke.TOKEN_ENV, token)
    return ctr

