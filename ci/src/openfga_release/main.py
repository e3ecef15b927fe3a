"""Build, test, publish and deploy OpenFGA on PostgreSQL.

The Dagger layer: each function wires containers together from the plain
modules beside it (recipe, ELF check, image layout...), which hold the
knowledge and are what the tests run for real. Every function only builds a
lazy pipeline; nothing talks to the engine until the caller asks for a result.

Repository files reach the pipeline as Directory arguments with a DefaultPath
(uploaded at call time): ``images/`` and ``kraftfiles/`` go into containers.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Annotated

import dagger
from dagger import DefaultPath, Doc, dag, function, object_type

from . import image
from .gobuild import BuildInputError, BuildRecipe
from .releases import DEFAULT_VERSION, GO_IMAGE, release, to_epoch

# Runs elfcheck.py on every binary before it is returned or packaged.
PYTHON_IMAGE = "python:3.13-slim-bookworm"
GOMODCACHE = "/go/pkg/mod"
GOCACHE = "/root/.cache/go-build"
_PINNED_IMAGE = re.compile(r"^[\w./-]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$")


def _check_pinned(ref: str) -> str:
    """An image reference must name a tag other than 'latest', or a digest."""
    name, _, tag = ref.partition("@")[0].rpartition(":")
    if not _PINNED_IMAGE.match(ref) or ("@sha256:" not in ref and (not name or tag == "latest")):
        raise BuildInputError(
            f"image {ref!r} is not pinned: name a version tag or a digest "
            f"(for example {GO_IMAGE!r}) so the same inputs give the same bytes"
        )
    return ref


def _cache_key(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", ref)


@object_type
class OpenfgaRelease:
    """Release system for OpenFGA on PostgreSQL: build, test, publish, deploy."""

    def _go(self, go_image: str, recipe: BuildRecipe) -> dagger.Container:
        """The pinned Go toolchain with named module and build caches."""
        ctr = (
            dag.container()
            .from_(_check_pinned(go_image))
            .with_mounted_cache(GOMODCACHE, dag.cache_volume("openfga-release-gomod"))
            .with_mounted_cache(
                GOCACHE, dag.cache_volume(f"openfga-release-gobuild-{_cache_key(go_image)}")
            )
            .with_env_variable("GOMODCACHE", GOMODCACHE)
            .with_env_variable("GOCACHE", GOCACHE)
        )
        for name, value in recipe.env().items():
            ctr = ctr.with_env_variable(name, value)
        return ctr

    def _recipe(
        self,
        version: str,
        source: dagger.Directory | None,
        arch: str,
        commit: str | None,
        date: str | None,
        tags: list[str] | None = None,
        go_flags: list[str] | None = None,
        ldflags: list[str] | None = None,
    ) -> BuildRecipe:
        """Validate the inputs into a recipe: every error is raised here, before any build."""
        flags: dict[str, list[str]] = {
            "tags": tags or [],
            "go_flags": go_flags or [],
            "ldflags": ldflags or [],
        }
        if source is None:
            overrides = {k: v for k, v in (("commit", commit), ("date", date)) if v}
            return BuildRecipe.for_release(
                release(version or DEFAULT_VERSION), arch, **flags, **overrides
            )
        if not version:
            raise BuildInputError(
                "--source needs --version to label the build, for example "
                f"--version {DEFAULT_VERSION}-myfork.1 (it is stamped into `openfga version`)"
            )
        return BuildRecipe.create(
            version=version,
            arch=arch,
            commit=commit,
            date=date,
            tags=flags["tags"],
            go_flags=flags["go_flags"],
            ldflags=flags["ldflags"],
        )

    def _built(
        self, recipe: BuildRecipe, source: dagger.Directory | None, go_image: str
    ) -> dagger.File:
        ctr = self._go(go_image, recipe)
        if source is None:
            ctr = ctr.with_exec(recipe.download_args()).with_workdir(recipe.module_dir(GOMODCACHE))
        else:
            ctr = ctr.with_directory("/src", source).with_workdir("/src")
        return ctr.with_exec(recipe.build_args()).file(recipe.output)

    def _checked(self, binary: dagger.File, arch: str) -> dagger.File:
        """The binary, returned only if elfcheck.py proves it static, non-PIE and ``arch``."""
        checker = resources.files(__package__).joinpath("elfcheck.py").read_text()
        return (
            dag.container()
            .from_(PYTHON_IMAGE)
            .with_new_file("/check/elfcheck.py", checker)
            .with_file("/check/openfga", binary)
            .with_exec(["python3", "/check/elfcheck.py", "--arch", arch, "/check/openfga"])
            .file("/check/openfga")
        )

    @function
    def build_openfga(
        self,
        version: Annotated[str, Doc("OpenFGA release tag; a label when --source is given")] = "",
        source: Annotated[
            dagger.Directory | None,
            Doc("an OpenFGA checkout or fork to build instead of a release"),
        ] = None,
        arch: Annotated[str, Doc("target architecture: amd64 or arm64")] = "amd64",
        commit: Annotated[
            str | None, Doc("commit stamped into the binary (default: the release's)")
        ] = None,
        date: Annotated[
            str | None, Doc("build date stamped in (default: the release's tag date)")
        ] = None,
        tags: Annotated[list[str], Doc("extra Go build tags; netgo is always set")] = (),  # type: ignore[assignment]
        go_flags: Annotated[
            list[str], Doc("extra go build flags (PIE and friends are refused)")
        ] = (),  # type: ignore[assignment]
        ldflags: Annotated[list[str], Doc("extra linker flags (external linking is refused)")] = (),  # type: ignore[assignment]
        go_image: Annotated[str, Doc("pinned Go toolchain image")] = GO_IMAGE,
    ) -> dagger.File:
        """A static, CGO-free, non-PIE OpenFGA binary for linux/<arch>, ELF-checked."""
        recipe = self._recipe(
            version,
            source,
            arch,
            commit,
            date,
            tags=list(tags),
            go_flags=list(go_flags),
            ldflags=list(ldflags),
        )
        return self._checked(self._built(recipe, source, go_image), recipe.arch)

    @function
    def openfga_image(
        self,
        version: Annotated[str, Doc("OpenFGA release tag; a label when --source is given")] = "",
        source: Annotated[
            dagger.Directory | None,
            Doc("an OpenFGA checkout or fork to build instead of a release"),
        ] = None,
        arch: Annotated[str, Doc("target architecture: amd64 or arm64")] = "amd64",
        commit: Annotated[str | None, Doc("commit stamped into the binary and labels")] = None,
        date: Annotated[
            str | None, Doc("release date for the binary, labels and file times")
        ] = None,
        overlay: Annotated[
            dagger.Directory | None,
            Doc("files copied over the image root"),
            DefaultPath("/images/openfga/rootfs"),
        ] = None,
        go_image: Annotated[str, Doc("pinned Go toolchain image")] = GO_IMAGE,
    ) -> dagger.Container:
        """A scratch OCI image: checked binary, CA bundle, writable /tmp, non-root user."""
        recipe = self._recipe(version, source, arch, commit, date)
        binary = self._checked(self._built(recipe, source, go_image), recipe.arch)
        return self._image_from(binary, recipe, overlay, go_image)

    def _image_from(
        self,
        binary: dagger.File,
        recipe: BuildRecipe,
        overlay: dagger.Directory | None,
        go_image: str,
    ) -> dagger.Container:
        layout = (
            dag.container()
            .from_(_check_pinned(go_image))  # has coreutils and the Debian CA bundle
            .with_file("/in/openfga", binary)
        )
        if overlay is not None:
            layout = layout.with_directory("/in/overlay", overlay)
        for cmd in image.layout_commands(
            "/rootfs", "/in/openfga", image.CA_BUNDLE_PATH, "/in/overlay" if overlay else None
        ):
            layout = layout.with_exec(cmd)
        # File times are the release date, or 0 when none is known: never the clock.
        epoch = to_epoch(recipe.date) if recipe.date else 0
        rootfs = layout.directory("/rootfs").with_timestamps(epoch)

        ctr = (
            dag.container(platform=dagger.Platform(f"linux/{recipe.arch}"))
            .with_rootfs(rootfs)
            .with_user(image.USER)
            .with_entrypoint(image.ENTRYPOINT)
            .with_default_args(image.DEFAULT_ARGS)
        )
        for port, what in image.PORTS.items():
            ctr = ctr.with_exposed_port(port, description=what)
        for name, value in image.labels(recipe.version, recipe.commit, recipe.date).items():
            ctr = ctr.with_label(name, value)
        return ctr
