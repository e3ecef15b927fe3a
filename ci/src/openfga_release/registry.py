"""Dagger wiring for publishing: an OCI registry (any), its credentials, crane and cosign.

The knowledge lives in :mod:`.recipes.publish` (matrix, tags, guard, crane argv),
:mod:`.recipes.sign` (cosign argv) and :mod:`.recipes.release` (the run itself).
This file only builds containers: pinned crane and cosign built from the Go
module proxy with the pinned Go image, the recipes package copied beside them,
and one ``python -m openfga_release.recipes.release publish`` run, the command
the tests run for real against a registry on loopback.

Why crane rather than ``Container.publish(platform_variants=...)``: see the
module docstring of :mod:`.recipes.publish` (the guard needs to ask the registry
before pushing; the digest must be known and checked; the run must be provable
without an engine). Dagger still does what only it can: export the
multi-platform OCI layout of the images it built (:func:`oci_layout`).

Credentials: the password and signing key reach the run only as
``with_secret_variable``; crane's login file lives in a ``with_mounted_temp``
(a tmpfs for that one exec), so no layer ever holds a credential.
"""

from __future__ import annotations

import json
import uuid
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Annotated, Any

import dagger
from dagger import Doc, dag, function

from .recipes import publish as pub
from .recipes import release as rel
from .recipes import sign
from .recipes.errors import StepError
from .recipes.releases import GO_IMAGE
from .sdk import object_type

TOOLS_PYTHON_IMAGE = rel.PYTHON_IMAGE
PKG_ROOT = "/opt/openfga-release"  # PYTHONPATH: holds openfga_release/recipes
DOCKER_CONFIG = "/run/registry-auth"  # tmpfs: crane's login file never reaches a layer
RUN_ID_ENV = "OPENFGA_RELEASE_RUN_ID"  # a fresh value: the engine must run it, not replay it
IN = "/in"

# Pushes and signatures must run every time: never answered from Dagger's function cache.
side_effect = function(cache="never")  # type: ignore[call-overload]  # SDK overloads omit cache


def _add_tree(directory: dagger.Directory, node: Traversable, prefix: str) -> dagger.Directory:
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.is_dir() and child.name != "__pycache__":
            directory = _add_tree(directory, child, f"{prefix}/{child.name}")
        elif child.name.endswith(".py"):
            directory = directory.with_new_file(f"{prefix}/{child.name}", child.read_text())
    return directory


def recipes_package() -> dagger.Directory:
    """``openfga_release/recipes`` (plain Python only) as a directory for PYTHONPATH."""
    pkg = resources.files(__package__)
    root = dag.directory().with_new_file("openfga_release/__init__.py", "")
    return _add_tree(root, pkg.joinpath("recipes"), "openfga_release/recipes")


def go_tool(go_image: str, package: str, version: str, name: str) -> dagger.File:
    """A static Go tool built from the module proxy with the pinned Go image."""
    return (
        dag.container()
        .from_(go_image)
        .with_env_variable("CGO_ENABLED", "0")
        .with_env_variable("GOTOOLCHAIN", "local")
        .with_env_variable("GOBIN", "/out")
        .with_mounted_cache("/go/pkg/mod", dag.cache_volume("openfga-release-gomod"))
        .with_exec(["go", "install", "-trimpath", "-ldflags=-s -w", f"{package}@{version}"])
        .file(f"/out/{name}")
    )


def tools(go_image: str = GO_IMAGE, python_image: str = TOOLS_PYTHON_IMAGE) -> dagger.Container:
    """Python with the recipes package, crane and cosign at the pinned versions."""
    crane = go_tool(go_image, pub.CRANE_PACKAGE, pub.CRANE_VERSION, "crane")
    cosign = go_tool(go_image, sign.COSIGN_PACKAGE, sign.COSIGN_VERSION, "cosign")
    return (
        dag.container()
        .from_(python_image)
        .with_file("/usr/local/bin/crane", crane, permissions=0o755)
        .with_file("/usr/local/bin/cosign", cosign, permissions=0o755)
        .with_directory(PKG_ROOT, recipes_package())
        .with_env_variable("PYTHONPATH", PKG_ROOT)
        .with_workdir("/work")
    )


def oci_layout(
    variants: list[dagger.Container], python_image: str = TOOLS_PYTHON_IMAGE
) -> dagger.Directory:
    """The multi-platform OCI image layout (one index) of the given per-platform containers."""
    tarball = dag.container().as_tarball(
        platform_variants=variants, media_types=dagger.ImageMediaTypes.OCIMediaTypes
    )
    return (
        dag.container()
        .from_(python_image)
        .with_mounted_file("/in/image.tar", tarball)
        .with_exec(["python3", "-c", rel.UNTAR_SCRIPT, "/in/image.tar", "/layout"])
        .directory("/layout")
    )


def publish_container(
    runner: dagger.Container,
    request: dict[str, Any],
    layouts: dict[str, dagger.Directory],
    username: str,
    password: dagger.Secret | None,
    sboms: dagger.Directory | None = None,
    signing_key: dagger.Secret | None = None,
    signing_password: dagger.Secret | None = None,
    public_key: dagger.File | None = None,
    oidc_token: dagger.Secret | None = None,
) -> dagger.Container:
    """The one exec that guards, pushes, tags, signs and verifies (see recipes/release.py).

    ``oidc_token``: keyless signing with the CI's OIDC identity (public Fulcio and
    Rekor); it replaces the key pair."""
    req = dict(request)
    req["crane"], req["cosign"] = "crane", "cosign"
    req["images"] = {name: f"{IN}/layouts/{name}" for name in sorted(layouts)}
    if oidc_token is not None:
        if signing_key is not None:
            raise pub.PublishInputError("sign with a key or keyless (OIDC), not both")
        req["sign"], req["keyless"] = True, True
    ctr = runner
    for name, layout in sorted(layouts.items()):
        ctr = ctr.with_directory(f"{IN}/layouts/{name}", layout)
    if sboms is not None:
        ctr = ctr.with_directory(f"{IN}/sboms", sboms)
    if public_key is not None:
        ctr = ctr.with_file(f"{IN}/cosign.pub", public_key)
        req["public_key"] = f"{IN}/cosign.pub"
    if req.get("sign") and (signing_key is None or signing_password is None):  # noqa: SIM102
        if not req.get("keyless"):
            raise pub.PublishInputError(
                "signing needs --signing-key env://COSIGN_KEY and --signing-password "
                "env://COSIGN_PASSWORD (secrets), or keyless signing in a CI with OIDC"
            )
    ctr = (
        ctr.with_new_file(f"{IN}/request.json", json.dumps(req, sort_keys=True))
        .with_mounted_temp(DOCKER_CONFIG)
        .with_env_variable("DOCKER_CONFIG", DOCKER_CONFIG)
    )
    if username:
        if password is None:
            raise pub.PublishInputError(
                "--username needs --password env://REGISTRY_PASSWORD (a secret)"
            )
        ctr = ctr.with_env_variable(rel.USERNAME_ENV, username).with_secret_variable(
            rel.PASSWORD_ENV, password
        )
    if signing_key is not None and signing_password is not None:
        ctr = ctr.with_secret_variable(sign.KEY_ENV, signing_key).with_secret_variable(
            sign.PASSWORD_ENV, signing_password
        )
    if oidc_token is not None:
        ctr = ctr.with_secret_variable(sign.ID_TOKEN_ENV, oidc_token)
    return ctr.with_env_variable(RUN_ID_ENV, uuid.uuid4().hex).with_exec(
        ["python3", "-m", "openfga_release.recipes.release", "publish",
         "--request", f"{IN}/request.json"],
        expect=dagger.ReturnType.ANY,
    )  # fmt: skip


async def run_publish(ctr: dagger.Container) -> dict[str, Any]:
    code = await ctr.exit_code()
    if code != 0:
        raise StepError(f"publishing failed: {(await ctr.stderr()).strip()[-3000:]}")
    return dict(json.loads(await ctr.stdout()))


@object_type
class Registry:
    """An OCI registry (any: GHCR, Docker Hub, ECR, Harbor, zot, distribution...)."""

    address: Annotated[str, Doc("registry host[:port], e.g. ghcr.io")]
    namespace: Annotated[str, Doc("repository prefix under the host, e.g. my-org")] = ""
    username: Annotated[str, Doc("registry user (empty: anonymous)")] = ""
    password: Annotated[dagger.Secret | None, Doc("registry password or token")] = None
    go_image: Annotated[str, Doc("pinned Go image that builds crane and cosign")] = GO_IMAGE
    python_image: Annotated[str, Doc("pinned Python image the publish run uses")] = (
        TOOLS_PYTHON_IMAGE
    )

    def _check(self) -> None:
        pub.check_address(self.address)
        pub.check_namespace(self.namespace)

    def request(self, version: str, latest: bool, force: bool, sign_: bool) -> dict[str, Any]:
        """Validated (InputError) before any container: address, namespace, tags."""
        self._check()
        pub.tags_for(version, latest)
        return {"address": self.address, "namespace": self.namespace, "version": version,
                "latest": latest, "force": force, "sign": sign_}  # fmt: skip

    @function
    def repositories(self) -> list[str]:
        """Where each image of the release matrix goes."""
        self._check()
        return [pub.repository(self.address, self.namespace, row) for row in pub.MATRIX]

    @side_effect
    async def publish(
        self,
        version: Annotated[str, Doc("release tag vX.Y.Z")],
        openfga: Annotated[dagger.Directory, Doc("OCI layout of the OpenFGA index")],
        postgres: Annotated[dagger.Directory, Doc("OCI layout of the PostgreSQL index")],
        latest: Annotated[bool, Doc("also tag latest")] = False,
        force: Annotated[bool, Doc("re-point a release tag that holds other content")] = False,
        sboms: Annotated[dagger.Directory | None, Doc("image SBOMs (dist/ names)")] = None,
        signing_key: Annotated[dagger.Secret | None, Doc("cosign private key")] = None,
        signing_password: Annotated[dagger.Secret | None, Doc("its password")] = None,
        public_key: Annotated[dagger.File | None, Doc("cosign.pub: verify after signing")] = None,
    ) -> list[str]:
        """Push OCI layouts (guarded, tagged), sign and verify; returns digest references."""
        result = await self.publish_layouts(
            version, {"openfga": openfga, "postgres": postgres}, latest=latest, force=force,
            sboms=sboms, signing_key=signing_key, signing_password=signing_password,
            public_key=public_key,
        )  # fmt: skip
        return [result["images"][name]["digest_ref"] for name in sorted(result["images"])]

    async def publish_layouts(
        self,
        version: str,
        layouts: dict[str, dagger.Directory],
        *,
        latest: bool = False,
        force: bool = False,
        sboms: dagger.Directory | None = None,
        sbom_names: dict[str, dict[str, str]] | None = None,
        signing_key: dagger.Secret | None = None,
        signing_password: dagger.Secret | None = None,
        public_key: dagger.File | None = None,
        oidc_token: dagger.Secret | None = None,
    ) -> dict[str, Any]:
        """The publish run's result (recipes/release.py ``run_publish``)."""
        signed = signing_key is not None or oidc_token is not None
        request = self.request(version, latest, force, signed)
        names = sbom_names or {
            row.name: {p: rel.image_sbom_name(row.name, version, p) for p in row.platforms}
            for row in pub.MATRIX
        }
        if sboms is not None:
            request["sboms"] = {
                image: {p: f"{IN}/sboms/{f}" for p, f in per.items()}
                for image, per in names.items()
            }
        ctr = publish_container(
            tools(self.go_image, self.python_image), request, layouts, self.username,
            self.password, sboms, signing_key, signing_password, public_key, oidc_token,
        )  # fmt: skip
        return await run_publish(ctr)
