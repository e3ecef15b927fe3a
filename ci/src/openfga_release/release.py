"""Dagger wiring for the release: build both arches, check, dist/, SBOMs, publish, sign.

The main object hands in what it builds (a binary and an image per arch, the
e2e check) as callables, so this file never re-decides how OpenFGA or
PostgreSQL are built. The order, and what runs concurrently:

1. both architectures' binaries (and the e2e check) are started together, then
   awaited together (an anyio task group: neither is awaited before both run);
2. each image of the matrix becomes one multi-platform OCI layout (Dagger's
   export with platform variants); its digests are read from the layout;
3. SBOMs (CycloneDX 1.6, standalone/sbom.py with the official library): one per
   binary from its Go build info, one per image and platform;
4. ``dist/``: binaries, SBOMs, ``checksums.txt``, ``release.json``
   (recipes/release.py ``finalize``, the command the tests run);
5. unless it is a dry run: publish (guard, push, tag), sign, attest, verify
   (:mod:`.registry`), then ``release.json`` is written again with
   ``published: true``. The digests cannot differ: they were read in step 2.

A dry run does steps 1-4 and pushes nothing: no crane, no cosign, no secret.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any

import anyio
import dagger
from dagger import Doc, dag

from . import openfga
from . import registry as reg
from .postgres import postgres_image
from .recipes import postgres as pg
from .recipes import publish as pub
from .recipes import release as rel
from .recipes.errors import InputError
from .recipes.releases import GO_IMAGE
from .recipes.releases import release as pinned_release

# A registry address that can never resolve (RFC 2606): what a dry run names.
DRY_RUN_ADDRESS = "registry.invalid"
SBOM_DIR = "/sboms"


@dataclass
class Inputs:
    """What the main object builds; this file only composes it."""

    version: str
    date: str  # the release's commit time: SBOM timestamps, nothing else
    binary: Callable[[str], dagger.File]  # arch -> checked static binary
    images: Mapping[str, Callable[[str], dagger.Container]]  # matrix name -> arch -> image
    e2e: Callable[[], Awaitable[Any]] | None = None
    go_image: str = GO_IMAGE
    python_image: str = rel.PYTHON_IMAGE


# The release function's arguments, declared once (main.py's signature stays short).
Address = Annotated[str, Doc("registry host[:port], e.g. ghcr.io")]
Namespace = Annotated[str, Doc("repository prefix under the host, e.g. my-org")]
Username = Annotated[str, Doc("registry user (empty: anonymous)")]
Password = Annotated[dagger.Secret | None, Doc("registry password or token (env://VAR)")]
SigningKey = Annotated[dagger.Secret | None, Doc("cosign private key (env://VAR)")]
SigningPassword = Annotated[dagger.Secret | None, Doc("the key's password (env://VAR)")]
PublicKey = Annotated[dagger.File | None, Doc("cosign.pub: verify after signing")]
OidcToken = Annotated[dagger.Secret | None, Doc("keyless signing: the CI's OIDC token")]
Latest = Annotated[bool, Doc("also tag latest")]
Force = Annotated[bool, Doc("re-point a release tag that holds other content")]


def inputs(
    *,
    version: str,
    date: str | None,
    from_source: bool,
    build: Callable[[str], openfga.Build],
    postgres_config: dagger.Directory | None,
    names: pg.Names,
    e2e: Callable[[], Awaitable[Any]] | None,
    go_image: str = GO_IMAGE,
) -> Inputs:
    """The main object's knobs as release inputs; every plain input is checked here."""
    date = date or (None if from_source else pinned_release(version).date)
    if not date:
        raise InputError("a release from --source needs --date (RFC 3339): the SBOMs' timestamp")
    if postgres_config is None:
        raise InputError("no PostgreSQL config: pass --postgres-config images/postgres")
    config = postgres_config
    for platform in pub.PLATFORMS:
        build(arch_of(platform))  # build inputs fail now, before anything runs

    def postgres(arch: str) -> dagger.Container:
        return postgres_image(config, names=names, platform=dagger.Platform(f"linux/{arch}"))

    return Inputs(
        version=version, date=date, binary=lambda arch: openfga.binary(build(arch)),
        images={"openfga": lambda arch: openfga.image(build(arch)), "postgres": postgres},
        e2e=e2e, go_image=go_image,
    )  # fmt: skip


def registry(
    address: str, namespace: str, username: str, password: dagger.Secret | None, go_image: str
) -> reg.Registry:
    """A validated Registry (InputError before any call)."""
    pub.check_address(address)
    pub.check_namespace(namespace)
    return reg.Registry(
        address=address, namespace=namespace, username=username, password=password,
        go_image=go_image,
    )  # fmt: skip


async def dry_run(inputs: Inputs) -> str:
    """The release-dry-run check: every artifact built, dist/ written, nothing pushed."""
    dist, _ = await release(inputs, None, dry_run=True)
    return await dist.file(rel.MANIFEST).contents()


def arch_of(platform: str) -> str:
    return platform.split("/")[1]


async def build_all(inputs: Inputs) -> dict[str, dagger.File]:
    """Every binary of the matrix's platforms, started together (and the e2e check)."""
    binaries = {p: inputs.binary(arch_of(p)) for p in pub.PLATFORMS}

    async def sync(file: dagger.File) -> None:
        await file.sync()

    async def check() -> None:
        assert inputs.e2e is not None
        await inputs.e2e()

    async with anyio.create_task_group() as group:
        for platform in pub.PLATFORMS:
            group.start_soon(sync, binaries[platform])
        if inputs.e2e is not None:
            group.start_soon(check)
    return binaries


def runner(python_image: str) -> dagger.Container:
    """Python with the recipes package (no crane/cosign: a dry run needs neither)."""
    return (
        dag.container()
        .from_(python_image)
        .with_directory(reg.PKG_ROOT, reg.recipes_package())
        .with_env_variable("PYTHONPATH", reg.PKG_ROOT)
    )


def sbom_tool(python_image: str) -> dagger.Container:
    script = resources.files(__package__).joinpath("standalone", "sbom.py").read_text()
    return (
        dag.container()
        .from_(python_image)
        .with_exec(["pip", "install", "--no-cache-dir", *rel.SBOM_REQUIREMENTS])
        .with_new_file("/tools/sbom.py", script)
    )


def buildinfo(binary: dagger.File, go_image: str) -> dagger.File:
    """``go version -m -json``: the Go build info embedded in the binary."""
    return (
        dag.container()
        .from_(go_image)
        .with_mounted_file("/in/openfga", binary)
        .with_exec(["go", "version", "-m", "-json", "/in/openfga"], redirect_stdout="/bi.json")
        .file("/bi.json")
    )


def sboms(
    inputs: Inputs,
    binaries: Mapping[str, dagger.File],
    images: Mapping[str, Mapping[str, Any]],
) -> dagger.Directory:
    """Every SBOM of the release, named as in dist/: one process (``sbom.py --batch``)."""
    v, date = inputs.version, inputs.date
    ctr = sbom_tool(inputs.python_image)
    jobs: list[list[str]] = []
    for platform, binary in sorted(binaries.items()):
        arch = arch_of(platform)
        ctr = ctr.with_mounted_file(f"/in/{arch}/openfga", binary).with_mounted_file(
            f"/in/{arch}/bi.json", buildinfo(binary, inputs.go_image)
        )
        jobs.append([
            "binary", "--name", "openfga", "--version", v, "--date", date,
            "--platform", platform, "--buildinfo", f"/in/{arch}/bi.json",
            "--sha256-of", f"/in/{arch}/openfga",
            "--output", f"{SBOM_DIR}/{rel.binary_sbom_name(v, platform)}",
        ])  # fmt: skip
    for name, entry in sorted(images.items()):
        for platform, digest in sorted(entry["platforms"].items()):
            base = "/".join(platform.split("/")[:2])
            arch = arch_of(base)
            job = [
                "image", "--name", entry["repository"], "--version", v, "--date", date,
                "--platform", base, "--sha256", digest[7:],
                "--output", f"{SBOM_DIR}/{rel.image_sbom_name(name, v, base)}",
            ]  # fmt: skip
            if name == "openfga":
                job += ["--buildinfo", f"/in/{arch}/bi.json",
                        "--binary-sha256-of", f"/in/{arch}/openfga"]  # fmt: skip
            else:
                status = inputs.images[name](arch).file("/var/lib/dpkg/status")
                ctr = ctr.with_mounted_file(f"/in/{name}-{arch}.dpkg", status)
                job += ["--dpkg-status", f"/in/{name}-{arch}.dpkg"]
            jobs.append(job)
    return (
        ctr.with_new_file("/in/sbom-jobs.json", json.dumps(jobs, indent=1))
        .with_exec(["mkdir", "-p", SBOM_DIR])
        .with_exec(["python3", "/tools/sbom.py", "--batch", "/in/sbom-jobs.json"])
        .directory(SBOM_DIR)
    )


def layouts(inputs: Inputs) -> dict[str, dagger.Directory]:
    return {
        row.name: reg.oci_layout(
            [inputs.images[row.name](arch_of(p)) for p in row.platforms], inputs.python_image
        )
        for row in pub.MATRIX
    }


async def images_entry(
    inputs: Inputs, layout_dirs: Mapping[str, dagger.Directory], address: str, namespace: str,
    latest: bool,
) -> dict[str, Any]:  # fmt: skip
    """Repository, digest and per-platform digests of each image, read from its layout."""
    ctr = runner(inputs.python_image)
    pairs = []
    for name, layout in sorted(layout_dirs.items()):
        ctr = ctr.with_directory(f"/in/layouts/{name}", layout)
        pairs.append(f"{name}=/in/layouts/{name}")
    argv = ["python3", "-m", "openfga_release.recipes.release", "images", "--address", address,
            "--namespace", namespace, "--version", inputs.version,
            *(["--latest"] if latest else []), *pairs]  # fmt: skip
    return dict(json.loads(await ctr.with_exec(argv).stdout()))


def finalize(
    inputs: Inputs, dist: dagger.Directory, images: Mapping[str, Any], published: bool
) -> dagger.Directory:
    argv = ["python3", "-m", "openfga_release.recipes.release", "finalize", "/dist",
            "--version", inputs.version, "--date", inputs.date, "--images", "/in/images.json",
            *(["--published"] if published else [])]  # fmt: skip
    return (
        runner(inputs.python_image)
        .with_directory("/dist", dist)
        .with_new_file("/in/images.json", json.dumps(images, sort_keys=True))
        .with_exec(argv)
        .directory("/dist")
    )


async def release(
    inputs: Inputs,
    registry: reg.Registry | None,
    *,
    dry_run: bool,
    latest: bool = False,
    force: bool = False,
    signing_key: dagger.Secret | None = None,
    signing_password: dagger.Secret | None = None,
    public_key: dagger.File | None = None,
    oidc_token: dagger.Secret | None = None,
) -> tuple[dagger.Directory, dict[str, Any]]:
    """dist/ and the images entry (digest refs); pushes only when not ``dry_run``."""
    if registry is None:
        if not dry_run:
            raise pub.PublishInputError(
                "a release that publishes needs a registry: --registry ghcr.io "
                "--namespace my-org --username ... --password env://REGISTRY_PASSWORD"
            )
        registry = reg.Registry(address=DRY_RUN_ADDRESS)
    signed = signing_key is not None or oidc_token is not None
    registry.request(inputs.version, latest, force, signed)  # InputError first
    binaries = await build_all(inputs)
    layout_dirs = layouts(inputs)
    images = await images_entry(inputs, layout_dirs, registry.address, registry.namespace, latest)
    sbom_dir = sboms(inputs, binaries, images)
    dist = dag.directory().with_directory(".", sbom_dir)
    for platform, binary in sorted(binaries.items()):
        dist = dist.with_file(rel.binary_name(inputs.version, platform), binary, permissions=0o755)
    if dry_run:
        return finalize(inputs, dist, images, published=False), images
    result = await registry.publish_layouts(
        inputs.version, layout_dirs, latest=latest, force=force, sboms=sbom_dir,
        signing_key=signing_key, signing_password=signing_password, public_key=public_key,
        oidc_token=oidc_token,
    )  # fmt: skip
    for name, pushed in result["images"].items():
        images[name].update(
            {k: pushed[k] for k in ("digest_ref", "pushed", "forced", "signed", "attested")
             if k in pushed}
        )  # fmt: skip
    return finalize(inputs, dist, images, published=True), images


async def publish_release(
    inputs: Inputs, registry: reg.Registry, **options: Any
) -> dagger.Directory:
    """The release that publishes (``options``: latest, force and the signing secrets)."""
    dist, _ = await release(inputs, registry, dry_run=False, **options)
    return dist
