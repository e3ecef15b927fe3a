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

import re
from dataclasses import dataclass, replace

from . import goflags
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


ALLOWED_GO_FLAGS = (
    "-a, -v, -x, -p N, -trimpath, -buildvcs=false, -mod=readonly, -buildmode=exe, -pgo=off"
)
ALLOWED_LINK_FLAGS = (
    "-s, -w, -X importpath.name=value (not the build stamps), -linkmode=internal, -buildmode=exe"
)

# Why a go build flag is refused (the default reason: not on the allow-list).
_GO_REFUSED = {
    "toolexec": "it runs a program of your choice on every compile and link step (it could "
    "rewrite the release source or the shared module cache)",
    "exec": "it runs a program of your choice",
    "overlay": "it swaps source files the checksum database vouches for",
    "modfile": "it swaps the go.mod the checksum database vouches for",
    "mod": "only -mod=readonly keeps go.mod and go.sum as released",
    "ldflags": "pass linker flags with --ldflags, so they can be checked",
    "tags": "pass build tags with --tags ('netgo' is always set)",
    "gcflags": "it changes code generation of a release build",
    "asmflags": "it changes code generation of a release build",
    "gccgoflags": "the release is built by gc",
    "compiler": "the release is built by gc",
    "cover": "it instruments the binary",
    "coverpkg": "it instruments the binary",
    "covermode": "it instruments the binary",
    "trimpath": "-trimpath is part of the recipe (reproducible bytes, no local paths)",
    "buildvcs": "VCS stamping is off in the recipe (the release is stamped by -X)",
    "n": "it prints the commands without building: there would be no binary",
    "o": "the recipe chooses the output",
    "C": "the recipe chooses the directory",
    "linkshared": "the release is one static binary",
    "pkgdir": "it changes where packages are read from",
    "installsuffix": "it changes where packages are read from",
    "work": "it keeps temporary build files",
    "json": "the recipe reads the build's exit status, not JSON",
}
_LINK_REFUSED = {
    "extldflags": "with CGO_ENABLED=0 there is no external linker to pass them to",
    "extld": "with CGO_ENABLED=0 there is no external linker",
    "extar": "with CGO_ENABLED=0 there is no external archiver",
    "H": "it sets the executable format; the recipe builds a Linux ELF",
    "r": "it sets a dynamic library search path; the release is static",
    "L": "it adds library directories; the release links only Go packages",
    "linkshared": "the release is one static binary",
    "installsuffix": "it changes where packages are read from",
    "pluginpath": "the release is not a plugin",
    "E": "it changes the entry symbol",
    "T": "it changes the text address",
    "R": "it changes the address rounding",
    "s": "-s (strip) is part of the recipe",
    "w": "-w (no DWARF) is part of the recipe",
}
# Tags Go sets itself, or that contradict the recipe (netgo, CGO_ENABLED=0).
_RESERVED_TAGS = frozenset((
    "cgo", "netcgo", "race", "msan", "asan", "gc", "gccgo", "unix", "ignore",
    "linux", "darwin", "windows", "freebsd", "amd64", "arm64", "386", "arm",
))  # fmt: skip
_TAG = re.compile(r"[A-Za-z0-9_.]+")
_COMMIT = re.compile(r"[0-9a-f]{7,40}")
_X_TARGET = re.compile(r"[\w./-]+\.[A-Za-z_]\w*")


def _tokens(values: list[str] | tuple[str, ...]) -> list[str]:
    """Each argument split as Go splits -ldflags (quoted fields kept whole)."""
    return [tok for value in values for tok in goflags.split(value)]


def _refuse_mode(flag: goflags.Flag, where: str) -> None:
    if flag.value not in (None, "exe", "default"):
        raise UnsafeBuildFlagsError(
            f"{where} -buildmode={flag.value} is refused: a PIE or shared build gave a malformed "
            "binary that crashed at load on Unikraft (exit 243). " + WHAT_WORKS
        )


def check_go_flags(go_flags: list[str] | tuple[str, ...], cgo_enabled: bool = False) -> list[str]:
    """Extra ``go build`` flags, read as Go reads them, against an allow-list.

    Returns them normalised (one canonical spelling each)."""
    if cgo_enabled:
        raise UnsafeBuildFlagsError(
            "CGO_ENABLED=1 links against a C library; the musl static-PIE build made that way "
            "crashed during init on Unikraft (exit 254). " + WHAT_WORKS
        )
    out: list[str] = []
    for flag in goflags.parse(_tokens(go_flags), takes_value=("p", "mod", "buildmode", "pgo")):
        name, value = flag.name, flag.value
        if name in ("race", "msan", "asan"):
            raise UnsafeBuildFlagsError(f"-{name} needs cgo and is refused. " + WHAT_WORKS)
        if name == "buildmode":
            _refuse_mode(flag, "go build")
        ok = (
            (name in ("a", "v", "x") and goflags.is_true(flag) in (True, False))
            or (name == "p" and value is not None and value.isdigit() and 1 <= int(value) <= 256)
            or (name == "trimpath" and goflags.is_true(flag))
            or (name == "buildvcs" and value in goflags.FALSE)
            or (name == "mod" and value == "readonly")
            or (name == "buildmode" and value in ("exe", "default"))
            or (name == "pgo" and value == "off")
        )
        if not ok:
            why = _GO_REFUSED.get(name, "it is not on the allow-list")
            raise BuildInputError(
                f"go build flag {flag.text!r} is refused: {why}. "
                f"Allowed extra go build flags: {ALLOWED_GO_FLAGS}"
            )
        out += flag.normalized(takes_value=name in ("p",))
    return out


def check_link_flags(ldflags: list[str] | tuple[str, ...]) -> list[str]:
    """Extra linker flags, read as the Go linker reads them, against an allow-list.

    Returns the tokens to append to the recipe's own (``-s -w`` and the stamps)."""
    tokens = _tokens(ldflags)
    out: list[str] = []
    for flag in goflags.parse(tokens, takes_value=("X", "linkmode", "buildmode", "extldflags",
                                                   "extld", "extar", "H", "r", "L", "E", "T")):
        name, value = flag.name, flag.value
        if name == "linkmode" and value == "external":
            raise UnsafeBuildFlagsError(
                "-linkmode external is refused: with CGO_ENABLED=0 there is no C linker to hand "
                "off to, and the external link crashed at load on Unikraft (exit 243). "
                + WHAT_WORKS
            )
        if "static-pie" in flag.text:
            raise UnsafeBuildFlagsError(
                "-static-pie is refused: static-PIE binaries crashed on Unikraft base-compat "
                "(exit 243 at load, 254 in init). " + WHAT_WORKS
            )
        if name == "buildmode":
            _refuse_mode(flag, "linker")
        if name == "X":
            out += ["-X", _check_x(flag)]
            continue
        ok = (name in ("s", "w") and goflags.is_true(flag)) or (
            name in ("linkmode", "buildmode") and value in ("internal", "exe")
        )
        if not ok:
            why = _LINK_REFUSED.get(name, "it is not on the allow-list")
            raise BuildInputError(
                f"linker flag {flag.text!r} is refused: {why}. "
                f"Allowed extra linker flags: {ALLOWED_LINK_FLAGS}"
            )
        out += flag.normalized(takes_value=False)
    return out


def _check_x(flag: goflags.Flag) -> str:
    """``-X importpath.name=value``: a well-formed target that is not a build stamp."""
    target, eq, _ = (flag.value or "").partition("=")
    if not eq or not _X_TARGET.fullmatch(target):
        raise BuildInputError(
            f"linker flag {flag.text!r} is not -X importpath.name=value "
            "(for example -X main.flavour=fips)"
        )
    if target.startswith(BUILD_INFO_PKG + "."):
        raise BuildInputError(
            f"{target} is set by the recipe from the release; use --version/--commit/--date "
            "instead of --ldflags (a stamp that differs from the labels would pass for another "
            "build)"
        )
    return flag.value or ""


def check_flags(
    go_flags: list[str] | tuple[str, ...],
    ldflags: list[str] | tuple[str, ...],
    cgo_enabled: bool = False,
) -> tuple[list[str], list[str]]:
    """Both allow-lists; the normalised go build flags and linker flags."""
    return check_go_flags(go_flags, cgo_enabled), check_link_flags(ldflags)


def check_arch(arch: str) -> str:
    if arch not in ARCHES:
        raise BuildInputError(
            f"arch {arch!r} is not supported: use one of {', '.join(ARCHES)} "
            "(Unikraft base-compat and the published images are linux/amd64 and linux/arm64)"
        )
    return arch


def check_tags(tags: list[str] | tuple[str, ...]) -> list[str]:
    """Extra build tags, split as Go splits -tags (commas, or spaces), each a plain tag."""
    out: list[str] = []
    for value in tags:
        for tag in re.split(r"[,\s]+", value.strip()):
            if not _TAG.fullmatch(tag):
                raise BuildInputError(
                    f"build tag {tag!r} is not a valid Go build tag: letters, digits, _ and . only "
                    "(give several as --tags a --tags b, or a,b)"
                )
            if tag in _RESERVED_TAGS or tag.startswith(("go1", "goexperiment.")):
                error = UnsafeBuildFlagsError if tag in ("cgo", "netcgo") else BuildInputError
                raise error(
                    f"build tag {tag!r} is refused: Go sets it itself or it contradicts the "
                    "recipe (CGO_ENABLED=0, netgo). " + WHAT_WORKS
                )
            if tag not in out:
                out.append(tag)
    return out


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
    module_sum: str | None = None  # a pinned release's h1: hash; None for --source builds

    @classmethod
    def for_release(cls, rel: Release, arch: str = "amd64", **kw: object) -> BuildRecipe:
        """The recipe for a pinned release; ``kw`` may override commit, date, flags."""
        params: dict = {"version": rel.version, "commit": rel.commit, "date": rel.date, **kw}
        return replace(cls.create(arch=arch, **params), module_sum=rel.sum)

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
    ) -> BuildRecipe:
        """Validate every input, then build the recipe. Raises before any build."""
        check_version_format(version)
        check_arch(arch)
        checked_tags = check_tags(tags)
        build_flags, link_flags = check_flags(go_flags, ldflags)
        if date is not None:
            to_epoch(date)  # a strict RFC 3339 time with an offset, or a clear error
        if commit is not None and not _COMMIT.fullmatch(commit):
            raise BuildInputError(
                f"commit {commit!r} is not a git hash: give 7 to 40 lowercase hex digits "
                "(git rev-parse HEAD)"
            )
        return cls(
            version=version,
            arch=arch,
            commit=commit,
            date=date,
            tags=tuple(checked_tags),
            go_flags=tuple(build_flags),
            ldflags=tuple(link_flags),
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
        """The -ldflags value, quoted the way ``go build`` splits it back."""
        stamps = ["-X", f"{BUILD_INFO_PKG}.Version={self.version}"]
        if self.commit:
            stamps += ["-X", f"{BUILD_INFO_PKG}.Commit={self.commit}"]
        if self.date:
            stamps += ["-X", f"{BUILD_INFO_PKG}.Date={self.date}"]
        return goflags.join(["-s", "-w", *stamps, *self.ldflags])

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

    def elfcheck_args(self, script: str, binary: str) -> list[str]:
        """standalone/elfcheck.py on the built binary: static, non-PIE, Linux, this arch, the
        recipe's build settings, and the stamped version and date the labels will claim."""
        argv = ["python3", script, "--arch", self.arch, "--expect-version", self.version]
        if self.date:
            argv += ["--expect-date", self.date]
        return [*argv, binary]

    def verify_args(self) -> list[str]:
        """Check every dependency in the module cache against its recorded hash."""
        return ["go", "mod", "verify"]

    def modverify_args(self, script: str, source_dir: str) -> list[str]:
        """Check the release source against its pinned hash (standalone/modverify.py),
        before it is built: a modified module cache never reaches a release binary."""
        if self.module_sum is None:
            raise BuildInputError("only a pinned release has a source hash to verify")
        return ["python3", script, "--module", OPENFGA_MODULE, "--version", self.version,
                "--sum", self.module_sum, source_dir]  # fmt: skip

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
