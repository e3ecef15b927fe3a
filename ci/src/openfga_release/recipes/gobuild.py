"""The OpenFGA build recipe: environment, flags and commands, plus the guards.

Plain module (no dagger import). The ``build-openfga`` Dagger function turns a
:class:`BuildRecipe` into ``with_exec`` steps; the integration tests run the
very same steps with this machine's Go. Whatever flag is wrong fails here,
before any build starts.

Why these flags (field notes, seed 001): on Unikraft ``base-compat`` a plain
static, non-PIE Go binary runs; ``-buildmode=pie`` with ``-linkmode external
-extldflags -static-pie`` under ``CGO_ENABLED=0`` gave a malformed binary that
crashed at load (exit 243), and a musl static-PIE crashed in init (exit 254).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from .errors import InputError
from .releases import (
    DEFAULT_VERSION,
    OPENFGA_MAIN_PACKAGE,
    OPENFGA_MODULE,
    RELEASES,
    Release,
    check_version_format,
    release,
    to_epoch,
)

ARCHES = ("amd64", "arm64")
BUILD_INFO_PKG = f"{OPENFGA_MODULE}/internal/build"
BASE_TAGS = ("netgo",)

WHAT_WORKS = (
    "What works on Unikraft base-compat is OpenFGA's own release recipe: "
    "CGO_ENABLED=0, -tags netgo, -trimpath, -ldflags '-s -w', the default exe build mode "
    "and Go's internal linker (a static, non-PIE binary)."
)


class UnsafeBuildFlagsError(InputError):
    """A flag set known to give a binary that crashes on Unikraft base-compat."""


class BuildInputError(InputError):
    """A build argument that cannot be right (arch, version label, ldflags...)."""


def _split(flags: list[str] | tuple[str, ...]) -> list[str]:
    """Flags may arrive as one string each or already split; normalise to tokens."""
    tokens: list[str] = []
    for flag in flags:
        tokens.extend(shlex.split(flag))
    return tokens


def check_flags(go_flags: list[str], ldflags: list[str], cgo_enabled: bool = False) -> None:
    """Refuse flag sets that crashed on Unikraft, saying why and what works.

    ``go_flags`` are extra ``go build`` flags, ``ldflags`` extra linker flags.
    """
    build = _split(go_flags)
    link = _split(ldflags)
    if cgo_enabled:
        raise UnsafeBuildFlagsError(
            "CGO_ENABLED=1 links against a C library; the musl static-PIE build made that way "
            "crashed during init on Unikraft (exit 254). " + WHAT_WORKS
        )
    for i, tok in enumerate(build):
        mode = tok.split("=", 1)[1] if tok.startswith("-buildmode=") else None
        if tok == "-buildmode" and i + 1 < len(build):
            mode = build[i + 1]
        if mode is not None and mode not in ("exe", "default"):
            raise UnsafeBuildFlagsError(
                f"-buildmode={mode} is refused: a PIE or shared build gave a malformed binary "
                "that crashed at load on Unikraft (exit 243). " + WHAT_WORKS
            )
        if tok.startswith("-ldflags"):
            raise BuildInputError(
                "pass linker flags with --ldflags, not inside --go-flags, so they can be checked"
            )
        if tok.startswith("-tags"):
            raise BuildInputError(
                "pass build tags with --tags, not inside --go-flags; 'netgo' is always set"
            )
        if tok in ("-race", "-msan", "-asan"):
            raise UnsafeBuildFlagsError(f"{tok} needs cgo and is refused. " + WHAT_WORKS)
    for i, tok in enumerate(link):
        value = tok.split("=", 1)[1] if "=" in tok else (link[i + 1] if i + 1 < len(link) else "")
        if tok.startswith("-linkmode") and value == "external":
            raise UnsafeBuildFlagsError(
                "-linkmode external is refused: with CGO_ENABLED=0 there is no C linker to hand "
                "off to, and the external link crashed at load on Unikraft (exit 243). "
                + WHAT_WORKS
            )
        if "static-pie" in tok or (tok.startswith("-extldflags") and "static-pie" in value):
            raise UnsafeBuildFlagsError(
                "-static-pie is refused: static-PIE binaries crashed on Unikraft base-compat "
                "(exit 243 at load, 254 in init). " + WHAT_WORKS
            )
        if tok == "-X" or tok.startswith("-X="):
            target = value
            if target.startswith(BUILD_INFO_PKG + "."):
                raise BuildInputError(
                    f"{target.split('=', 1)[0]} is set by the recipe from the release; "
                    "use --version/--commit/--date instead of --ldflags"
                )


def check_arch(arch: str) -> str:
    if arch not in ARCHES:
        raise BuildInputError(
            f"arch {arch!r} is not supported: use one of {', '.join(ARCHES)} "
            "(Unikraft base-compat and the published images are linux/amd64 and linux/arm64)"
        )
    return arch


def check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not tag or not all(c.isalnum() or c in "_.-" for c in tag):
            raise BuildInputError(f"build tag {tag!r} is not a valid Go build tag")
        if tag in ("cgo",):
            raise UnsafeBuildFlagsError("the 'cgo' tag is refused. " + WHAT_WORKS)
    return tags


@dataclass(frozen=True)
class BuildRecipe:
    """Everything that decides the bytes of one OpenFGA binary."""

    version: str
    arch: str = "amd64"
    commit: str | None = None
    date: str | None = None
    tags: tuple[str, ...] = ()
    go_flags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    output: str = "/out/openfga"
    package: str = OPENFGA_MAIN_PACKAGE
    _checked: bool = field(default=False, repr=False)

    @classmethod
    def for_release(cls, rel: Release, arch: str = "amd64", **kw: object) -> BuildRecipe:
        """The recipe for a pinned release; ``kw`` may override commit, date, flags."""
        params: dict = {"version": rel.version, "commit": rel.commit, "date": rel.date, **kw}
        return cls.create(arch=arch, **params)

    @classmethod
    def create(
        cls,
        *,
        version: str,
        arch: str = "amd64",
        commit: str | None = None,
        date: str | None = None,
        tags: list[str] | tuple[str, ...] = (),
        go_flags: list[str] | tuple[str, ...] = (),
        ldflags: list[str] | tuple[str, ...] = (),
        output: str = "/out/openfga",
    ) -> BuildRecipe:
        """Validate every input, then build the recipe. Raises before any build."""
        check_version_format(version)
        check_arch(arch)
        check_tags(list(tags))
        check_flags(list(go_flags), list(ldflags))
        if date is not None:
            to_epoch(date)  # an RFC 3339 time, or a clear error
        if commit is not None and not (
            7 <= len(commit) <= 40 and all(c in "0123456789abcdef" for c in commit)
        ):
            raise BuildInputError(f"commit {commit!r} is not a git hash (7 to 40 hex digits)")
        return cls(
            version=version,
            arch=arch,
            commit=commit,
            date=date,
            tags=tuple(tags),
            go_flags=tuple(_split(list(go_flags))),
            ldflags=tuple(_split(list(ldflags))),
            output=output,
            _checked=True,
        )

    def env(self) -> dict[str, str]:
        """The environment of the build, the same in Dagger and in the tests."""
        return {
            "CGO_ENABLED": "0",
            "GOOS": "linux",
            "GOARCH": self.arch,
            # The pinned Go is the toolchain; never download another one.
            "GOTOOLCHAIN": "local",
            # go.sum must already cover everything; nothing is rewritten.
            "GOFLAGS": "-mod=readonly",
        }

    def link_flags(self) -> str:
        stamps = [f"-X {BUILD_INFO_PKG}.Version={self.version}"]
        if self.commit:
            stamps.append(f"-X {BUILD_INFO_PKG}.Commit={self.commit}")
        if self.date:
            stamps.append(f"-X {BUILD_INFO_PKG}.Date={self.date}")
        return " ".join(["-s", "-w", *stamps, *self.ldflags])

    def build_args(self) -> list[str]:
        """``go build`` argv, run in the module's root directory."""
        return [
            "go",
            "build",
            "-trimpath",
            "-buildvcs=false",
            "-tags",
            ",".join(dict.fromkeys([*BASE_TAGS, *self.tags])),
            "-ldflags",
            self.link_flags(),
            *self.go_flags,
            "-o",
            self.output,
            self.package,
        ]

    def download_args(self) -> list[str]:
        """Fetch the release's module source (verified against the checksum database)."""
        return ["go", "mod", "download", f"{OPENFGA_MODULE}@{self.version}"]

    def module_dir(self, gomodcache: str) -> str:
        """Where ``go mod download`` puts the release source (openfga has no capitals to escape)."""
        return f"{gomodcache}/{OPENFGA_MODULE}@{self.version}"


def recipe_for(
    version: str,
    *,
    from_source: bool,
    arch: str = "amd64",
    commit: str | None = None,
    date: str | None = None,
    tags: list[str] | tuple[str, ...] = (),
    go_flags: list[str] | tuple[str, ...] = (),
    ldflags: list[str] | tuple[str, ...] = (),
) -> BuildRecipe:
    """The validated recipe for a pinned release, or for a source tree labelled ``version``.

    Every rule about the build's inputs is applied here, before anything runs.
    """
    if not from_source:
        if commit or date:
            raise BuildInputError(
                "--commit and --date are stamped from the pinned release and cannot be "
                "overridden (a different value would claim a build the release did not make); "
                "they are for --source builds"
            )
        return BuildRecipe.for_release(
            release(version or DEFAULT_VERSION), arch,
            tags=list(tags), go_flags=list(go_flags), ldflags=list(ldflags),
        )  # fmt: skip
    check_fork_label(version)
    return BuildRecipe.create(
        version=version, arch=arch, commit=commit, date=date,
        tags=tags, go_flags=go_flags, ldflags=ldflags,
    )  # fmt: skip


def check_fork_label(version: str) -> str:
    """A source build's version must say it is not the release: ``v1.22.1-acme.1``.

    Stamped and labelled exactly like an official release, a fork would pass for it.
    """
    check_version_format(version)
    if "-" not in version or version in RELEASES:
        raise BuildInputError(
            f"--source builds need their own label, not {version!r}: add a suffix such as "
            f"--version {DEFAULT_VERSION}-acme.1 (stamped into `openfga version` and the image "
            "labels, so the build cannot pass for an official release)"
        )
    return version
