# ruff: noqa: E501  (the messages are compared whole, as users read them)
"""Every build refusal, word for word: the message is the product (it names the problem and
the fix), so a changed word is a change a reviewer sees here. Also kills the guards' mutants."""

from __future__ import annotations

import pytest
from openfga_release.recipes import gobuild as g

WORKS = (
    "What works on Unikraft base-compat is OpenFGA's own release recipe: CGO_ENABLED=0, "
    "-tags netgo, -trimpath, -ldflags '-s -w', the default exe build mode and Go's internal "
    "linker (a static, non-PIE binary)."
)
GO_ALLOWED = (
    "Allowed extra go build flags: -a, -v, -x, -p N, -trimpath, -buildvcs=false, "
    "-mod=readonly, -buildmode=exe, -pgo=off"
)
LINK_ALLOWED = (
    "Allowed extra linker flags: -s, -w, -X importpath.name=value (not the build stamps), "
    "-linkmode=internal, -buildmode=exe"
)


def refuse(kind, arg):
    if kind == "go":
        return g.check_go_flags(arg)
    if kind == "cgo":
        return g.check_go_flags([], cgo_enabled=True)
    if kind == "link":
        return g.check_link_flags(arg)
    if kind == "arch":
        return g.check_arch(arg)
    if kind == "tag":
        return g.check_tags([arg])
    if kind == "fork":
        return g.check_fork_label(arg)
    if kind == "commit":
        return g.recipe_for("v1.22.1-a.1", from_source=True, commit=arg)
    return g.recipe_for("v1.22.1", from_source=False, commit="abc1234")


MESSAGES = [
    (
        "go",
        ["-toolexec=/x"],
        g.BuildInputError,
        "go build flag '-toolexec=/x' is refused: it runs a program of your choice on every compile and link step (it could rewrite the release source or the shared module cache). "
        + GO_ALLOWED,
    ),
    (
        "go",
        ["-gcflags=-N"],
        g.BuildInputError,
        "go build flag '-gcflags=-N' is refused: it changes code generation of a release build. "
        + GO_ALLOWED,
    ),
    (
        "go",
        ["-unknown"],
        g.BuildInputError,
        "go build flag '-unknown' is refused: it is not on the allow-list. " + GO_ALLOWED,
    ),
    (
        "go",
        ["-buildmode=pie"],
        g.UnsafeBuildFlagsError,
        "go build -buildmode=pie is refused: a PIE or shared build gave a malformed binary that crashed at load on Unikraft (exit 243). "
        + WORKS,
    ),
    ("go", ["-race"], g.UnsafeBuildFlagsError, "-race needs cgo and is refused. " + WORKS),
    (
        "go",
        ["-mod=default"],
        g.BuildInputError,
        "go build flag '-mod=default' is refused: only -mod=readonly keeps go.mod and go.sum as released. "
        + GO_ALLOWED,
    ),
    (
        "go",
        ["-trimpath=false"],
        g.BuildInputError,
        "go build flag '-trimpath=false' is refused: -trimpath is part of the recipe (reproducible bytes, no local paths). "
        + GO_ALLOWED,
    ),
    (
        "go",
        ["-buildvcs=true"],
        g.BuildInputError,
        "go build flag '-buildvcs=true' is refused: VCS stamping is off in the recipe (the release is stamped by -X). "
        + GO_ALLOWED,
    ),
    (
        "go",
        ["-p=0"],
        g.BuildInputError,
        "go build flag '-p=0' is refused: it is not on the allow-list. " + GO_ALLOWED,
    ),
    (
        "cgo",
        None,
        g.UnsafeBuildFlagsError,
        "CGO_ENABLED=1 links against a C library; the musl static-PIE build made that way crashed during init on Unikraft (exit 254). "
        + WORKS,
    ),
    (
        "link",
        ["-linkmode=external"],
        g.UnsafeBuildFlagsError,
        "-linkmode external is refused: with CGO_ENABLED=0 there is no C linker to hand off to, and the external link crashed at load on Unikraft (exit 243). "
        + WORKS,
    ),
    (
        "link",
        ["-extldflags=-static-pie"],
        g.UnsafeBuildFlagsError,
        "-static-pie is refused: static-PIE binaries crashed on Unikraft base-compat (exit 243 at load, 254 in init). "
        + WORKS,
    ),
    (
        "link",
        ["-H=freebsd"],
        g.BuildInputError,
        "linker flag '-H=freebsd' is refused: it sets the executable format; the recipe builds a Linux ELF. "
        + LINK_ALLOWED,
    ),
    (
        "link",
        ["-zz"],
        g.BuildInputError,
        "linker flag '-zz' is refused: it is not on the allow-list. " + LINK_ALLOWED,
    ),
    (
        "link",
        ["-X", "main.x"],
        g.BuildInputError,
        "linker flag '-X main.x' is not -X importpath.name=value (for example -X main.flavour=fips)",
    ),
    (
        "link",
        ["-s=false"],
        g.BuildInputError,
        "linker flag '-s=false' is refused: -s (strip) is part of the recipe. " + LINK_ALLOWED,
    ),
    (
        "link",
        ["-X github.com/openfga/openfga/internal/build.Version=v9"],
        g.BuildInputError,
        "github.com/openfga/openfga/internal/build.Version is set by the recipe from the release; use --version/--commit/--date instead of --ldflags (a stamp that differs from the labels would pass for another build)",
    ),
    (
        "link",
        ["-buildmode=pie"],
        g.UnsafeBuildFlagsError,
        "linker -buildmode=pie is refused: a PIE or shared build gave a malformed binary that crashed at load on Unikraft (exit 243). "
        + WORKS,
    ),
    (
        "link",
        ["-buildmode", "default"],
        g.BuildInputError,
        "linker flag '-buildmode default' is refused: it is not on the allow-list. " + LINK_ALLOWED,
    ),
    (
        "arch",
        "riscv64",
        g.BuildInputError,
        "arch 'riscv64' is not supported: use one of amd64, arm64 (Unikraft base-compat and the published images are linux/amd64 and linux/arm64)",
    ),
    (
        "tag",
        "bad/tag",
        g.BuildInputError,
        "build tag 'bad/tag' is not a valid Go build tag: letters, digits, _ and . only (give several as --tags a --tags b, or a,b)",
    ),
    (
        "tag",
        "cgo",
        g.UnsafeBuildFlagsError,
        "build tag 'cgo' is refused: Go sets it itself or it contradicts the recipe (CGO_ENABLED=0, netgo). "
        + WORKS,
    ),
    (
        "tag",
        "go1.21",
        g.BuildInputError,
        "build tag 'go1.21' is refused: Go sets it itself or it contradicts the recipe (CGO_ENABLED=0, netgo). "
        + WORKS,
    ),
    (
        "fork",
        "v1.22.1",
        g.BuildInputError,
        "--source builds need their own label, not 'v1.22.1': add a suffix such as --version v1.22.1-acme.1 (stamped into `openfga version` and the image labels, so the build cannot pass for an official release)",
    ),
    (
        "commit",
        "xyz",
        g.BuildInputError,
        "commit 'xyz' is not a git hash: give 7 to 40 lowercase hex digits (git rev-parse HEAD)",
    ),
    (
        "release-commit",
        None,
        g.BuildInputError,
        "--commit and --date are stamped from the pinned release and cannot be overridden (a different value would claim a build the release did not make); they are for --source builds",
    ),
]


@pytest.mark.parametrize(("kind", "arg", "error", "message"), MESSAGES)
def test_each_refusal_says_exactly_this(kind, arg, error, message):
    with pytest.raises(error) as err:
        refuse(kind, arg)
    assert str(err.value) == message
