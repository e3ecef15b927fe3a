"""The build guards read flags as Go does: allow-lists, every spelling (issue 8, class 1)."""

from __future__ import annotations

import pytest
from openfga_release.recipes import goflags
from openfga_release.recipes.errors import InputError
from openfga_release.recipes.gobuild import (
    BuildInputError,
    BuildRecipe,
    UnsafeBuildFlagsError,
    check_go_flags,
    check_link_flags,
    check_tags,
    recipe_for,
)
from openfga_release.recipes.goflags import FlagSyntaxError
from openfga_release.recipes.releases import RELEASES


def recipe(**kw) -> BuildRecipe:
    return BuildRecipe.create(version="v1.22.1", **kw)


# ------------------------------------------------------------ Go's quoting


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("-s -w", ["-s", "-w"]),
        ("  -s\t-w\n", ["-s", "-w"]),
        ("-X 'main.x=hello world'", ["-X", "main.x=hello world"]),
        ('-X "main.x=it\'s"', ["-X", "main.x=it's"]),
        ("-X=main.x='a b'", ["-X=main.x='a", "b'"]),  # a quote only counts at a field's start
        ("''", [""]),
        ("", []),
    ],
)
def test_split_is_go_quoted_split(text: str, fields: list[str]) -> None:
    assert goflags.split(text) == fields


@pytest.mark.parametrize("text", ["-X 'main.x=open", '"', "-s 'a\"b"])
def test_unterminated_quote_is_a_clear_error_not_a_crash(text: str) -> None:
    with pytest.raises(FlagSyntaxError, match="unterminated"):
        goflags.split(text)


@pytest.mark.parametrize(
    "fields", [["-s"], ["main.x=hello world"], ["it's"], ['say "hi"'], ["a\tb"], []]
)
def test_join_round_trips_through_split(fields: list[str]) -> None:
    assert goflags.split(goflags.join(fields)) == fields


def test_join_refuses_both_quotes() -> None:
    with pytest.raises(FlagSyntaxError, match="both single and double quotes"):
        goflags.join(["it's \"x\""])


# ------------------------------------------------------------ the flag package


def test_one_or_two_dashes_are_the_same_flag() -> None:
    a = goflags.parse(["-p", "4", "--v", "-x=true"], takes_value=["p"])
    assert [(f.name, f.value) for f in a] == [("p", "4"), ("v", None), ("x", "true")]
    b = goflags.parse(["--p=4"], takes_value=["p"])
    assert (b[0].name, b[0].value) == ("p", "4")


@pytest.mark.parametrize(
    ("tokens", "match"),
    [
        (["---x"], "bad flag syntax"),
        (["-=x"], "bad flag syntax"),
        (["-"], "not a flag"),
        (["--"], "not a flag"),
        (["./cmd/other"], "not a flag"),
        (["-v", "main.go"], "not a flag"),
        (["-p"], "needs a value"),
    ],
)
def test_what_go_would_stop_at_or_reject_is_an_error(tokens: list[str], match: str) -> None:
    with pytest.raises(FlagSyntaxError, match=match):
        goflags.parse(tokens, takes_value=["p"])


@pytest.mark.parametrize(("value", "truth"), [(None, True), ("1", True), ("T", True),
                                              ("0", False), ("False", False)])  # fmt: skip
def test_booleans_read_like_parsebool(value: str | None, truth: bool) -> None:
    assert goflags.is_true(goflags.Flag("v", value, "-v")) is truth


def test_a_boolean_that_is_not_one_is_refused() -> None:
    with pytest.raises(FlagSyntaxError, match="not a boolean"):
        goflags.is_true(goflags.Flag("trimpath", "yes", "-trimpath=yes"))


# ------------------------------------------------------------ go build allow-list

ISSUE_GO_FLAGS = [  # the bypasses found by the hostile review, each refused
    "--ldflags='-s -w'",
    "-ldflags=-s",
    "--tags=osusergo",
    "-toolexec=/bin/true",
    "--toolexec /bin/true",
    "-overlay=/tmp/o.json",
    "-modfile=/tmp/go.mod",
    "-mod=mod",
    "--mod=vendor",
    "-trimpath=false",
    "--trimpath=0",
    "-cover",
    "-gcflags=all=-N -l",
    "-n",
    "-o /tmp/x",
    "-C /tmp",
    "-exec=/bin/sh",
    "-buildvcs=true",
    "-pgo=/tmp/default.pgo",
    "-p 0",
    "-p=100000",
    "-json",
    "-linkshared",
    "-compiler=gccgo",
]


@pytest.mark.parametrize("flag", ISSUE_GO_FLAGS)
def test_go_build_flags_outside_the_allow_list_are_refused(flag: str) -> None:
    with pytest.raises(InputError) as err:
        check_go_flags([flag])
    msg = str(err.value)
    assert "refused" in msg or "not a flag" in msg
    if "refused" in msg:
        assert "Allowed extra go build flags" in msg


@pytest.mark.parametrize(
    "flag", ["-buildmode=pie", "--buildmode pie", "-buildmode=c-shared", "-buildmode=plugin"]
)
def test_pie_and_shared_modes_are_unsafe_in_any_spelling(flag: str) -> None:
    with pytest.raises(UnsafeBuildFlagsError, match="exit 243"):
        check_go_flags([flag])


@pytest.mark.parametrize("flag", ["-race", "--race", "-msan", "-asan=true"])
def test_cgo_only_modes_are_unsafe(flag: str) -> None:
    with pytest.raises(UnsafeBuildFlagsError, match="needs cgo"):
        check_go_flags([flag])


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        (["-v"], ["-v"]),
        (["--v", "-x"], ["-v", "-x"]),
        (["-p 4"], ["-p", "4"]),
        (["--p=2"], ["-p", "2"]),
        (["-trimpath"], ["-trimpath"]),
        (["-trimpath=true"], ["-trimpath=true"]),
        (["-buildvcs=false"], ["-buildvcs=false"]),
        (["-mod=readonly"], ["-mod=readonly"]),
        (["--buildmode=exe"], ["-buildmode=exe"]),
        (["-pgo=off"], ["-pgo=off"]),
        (["-a -v"], ["-a", "-v"]),
    ],
)
def test_allowed_go_flags_pass_normalised(given: list[str], normalised: list[str]) -> None:
    assert check_go_flags(given) == normalised


def test_p_bounds_are_inclusive() -> None:
    assert check_go_flags(["-p=1"]) == ["-p", "1"]
    assert check_go_flags(["-p=256"]) == ["-p", "256"]
    with pytest.raises(BuildInputError):
        check_go_flags(["-p=257"])


# ------------------------------------------------------------ linker allow-list

ISSUE_LDFLAGS = [
    "--X github.com/openfga/openfga/internal/build.Version=v9.9.9",
    "-X=github.com/openfga/openfga/internal/build.Commit=deadbeef",
    "-X github.com/openfga/openfga/internal/build.Date=2020-01-01T00:00:00Z",
    "-H=freebsd",
    "-H freebsd",
    "-s=false",
    "-w=0",
    "-extld=clang",
    "-r /lib",
    "-X main.x",
    "-X =value",
    "-E main.evil",
    "main.o",
]


@pytest.mark.parametrize("flag", ISSUE_LDFLAGS)
def test_linker_flags_outside_the_allow_list_are_refused(flag: str) -> None:
    with pytest.raises(InputError):
        check_link_flags([flag])


@pytest.mark.parametrize(
    "flag",
    ["-linkmode external", "--linkmode=external", "-buildmode=pie", "-extldflags=-static-pie",
     "-extldflags '-static-pie -lc'"],
)  # fmt: skip
def test_linker_modes_that_crashed_are_unsafe_in_any_spelling(flag: str) -> None:
    with pytest.raises(UnsafeBuildFlagsError):
        check_link_flags([flag])


def test_build_stamps_cannot_be_overridden_in_any_spelling() -> None:
    for flag in ISSUE_LDFLAGS[:3]:
        with pytest.raises(BuildInputError, match="--version/--commit/--date"):
            check_link_flags([flag])


def test_user_x_keeps_its_quoting_in_the_recipes_ldflags() -> None:
    r = recipe(ldflags=["-X 'main.greeting=hello world'", "-linkmode=internal"])
    value = r.build_args()[r.build_args().index("-ldflags") + 1]
    assert goflags.split(value)[-3:] == ["-X", "main.greeting=hello world", "-linkmode=internal"]
    assert "'main.greeting=hello world'" in value


# ------------------------------------------------------------ tags


@pytest.mark.parametrize(
    ("tags", "out"),
    [(["osusergo"], ["osusergo"]), (["a,b"], ["a", "b"]), (["a b", "a"], ["a", "b"]),
     (["timetzdata", "purego"], ["timetzdata", "purego"])],
)  # fmt: skip
def test_tags_split_like_go(tags: list[str], out: list[str]) -> None:
    assert check_tags(tags) == out


@pytest.mark.parametrize("tag", ["netcgo", "cgo"])
def test_tags_that_need_cgo_are_unsafe(tag: str) -> None:
    with pytest.raises(UnsafeBuildFlagsError):
        check_tags([tag])


@pytest.mark.parametrize("tag", ["go1.21", "goexperiment.arenas", "linux", "race", "bad/tag", "-x"])
def test_reserved_or_malformed_tags_are_refused(tag: str) -> None:
    with pytest.raises(BuildInputError):
        check_tags([tag])


def test_netgo_always_stays_first_and_once() -> None:
    r = recipe(tags=["osusergo,netgo"])
    assert r.build_args()[r.build_args().index("-tags") + 1] == "netgo,osusergo"


# ------------------------------------------------------------ what mutation testing asked for


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        (["-v=false"], ["-v=false"]),  # a boolean flag may also be switched off
        (["-x=0", "-a=true"], ["-x=0", "-a=true"]),
        (["-mod readonly"], ["-mod=readonly"]),  # value flags: the space form, as Go reads it
        (["-buildmode exe"], ["-buildmode=exe"]),
        (["-buildmode=default"], ["-buildmode=default"]),
        (["-pgo off"], ["-pgo=off"]),
        (["-buildvcs=0"], ["-buildvcs=0"]),
    ],
)
def test_more_allowed_go_flag_spellings(given: list[str], normalised: list[str]) -> None:
    assert check_go_flags(given) == normalised


@pytest.mark.parametrize(
    "flag", ["-mod=default", "-pgo=exe", "-buildvcs=default", "-p=exe", "-trimpath=exe", "-v=maybe"]
)
def test_allowed_values_belong_to_their_own_flag(flag: str) -> None:
    with pytest.raises(InputError):
        check_go_flags([flag])


@pytest.mark.parametrize(
    ("given", "out"),
    [
        (["-s"], ["-s"]),
        (["-w=true", "--s=1"], ["-w=true", "-s=1"]),
        (["-linkmode internal"], ["-linkmode=internal"]),
        (["-buildmode exe"], ["-buildmode=exe"]),
        (["-X main.x=a=b"], ["-X", "main.x=a=b"]),  # the value may itself hold '='
        (["-X=main.x="], ["-X", "main.x="]),
        (["-X", "example.com/m/pkg.Name=v"], ["-X", "example.com/m/pkg.Name=v"]),
    ],
)
def test_allowed_linker_flags_pass_normalised(given: list[str], out: list[str]) -> None:
    assert check_link_flags(given) == out


@pytest.mark.parametrize("flag", ["-linkmode=auto", "-buildmode=default", "-s=maybe", "-X main"])
def test_linker_values_outside_the_allow_list_are_refused(flag: str) -> None:
    with pytest.raises(InputError):
        check_link_flags([flag])


def test_the_recipes_argv_are_exact() -> None:
    r = BuildRecipe.for_release(RELEASES["v1.18.1"])
    assert r.link_flags() == (
        "-s -w -X github.com/openfga/openfga/internal/build.Version=v1.18.1 "
        "-X github.com/openfga/openfga/internal/build.Commit="
        "69efbd95b3d44afb2e2567d485dcc792c7d79e3f "
        "-X github.com/openfga/openfga/internal/build.Date=2026-06-29T18:39:00Z"
    )
    assert r.verify_args() == ["go", "mod", "verify"]
    assert r.elfcheck_args("/c/e.py", "/b") == [
        "python3", "/c/e.py", "--arch", "amd64", "--expect-version", "v1.18.1",
        "--expect-date", "2026-06-29T18:39:00Z", "/b",
    ]  # fmt: skip
    assert r.modverify_args("/c/m.py", "/src") == [
        "python3", "/c/m.py", "--module", "github.com/openfga/openfga", "--version", "v1.18.1",
        "--sum", "h1:scfXscw1co45EJxPHSWQ9OXso+MnmkkGEdQ3+Y2P4mo=", "/src",
    ]  # fmt: skip
    fork = BuildRecipe.create(version="v1.22.1-acme.1")
    assert fork.elfcheck_args("/e", "/b") == [
        "python3", "/e", "--arch", "amd64", "--expect-version", "v1.22.1-acme.1", "/b",
    ]  # fmt: skip


def test_recipe_for_passes_every_input_through() -> None:
    rel = recipe_for("v1.21.0", from_source=False, arch="arm64", tags=["osusergo"],
                     go_flags=["-v"], ldflags=["-X main.f=1"])  # fmt: skip
    assert (rel.version, rel.arch, rel.tags, rel.go_flags, rel.ldflags) == (
        "v1.21.0", "arm64", ("osusergo",), ("-v",), ("-X", "main.f=1"),
    )  # fmt: skip
    assert rel.date == "2026-09-20T16:11:15Z" and rel.module_sum is not None
    src = recipe_for("v1.22.1-a.1", from_source=True, arch="arm64", commit="abc1234",
                     date="2026-01-02T03:04:05Z", tags=["osusergo"], go_flags=["-x"],
                     ldflags=["-w"])  # fmt: skip
    assert (src.arch, src.commit, src.date, src.tags, src.go_flags, src.ldflags) == (
        "arm64", "abc1234", "2026-01-02T03:04:05Z", ("osusergo",), ("-x",), ("-w",),
    )  # fmt: skip
    assert recipe_for("", from_source=False).version == "v1.22.1"  # the pinned default


def test_the_build_environment_is_exact() -> None:
    assert recipe(arch="arm64").env() == {
        "CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": "arm64", "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=readonly",
    }  # fmt: skip


def test_several_x_flags_are_all_kept_in_order() -> None:
    assert check_link_flags(["-s", "-X main.a=1", "-X=main.b=2"]) == [
        "-s", "-X", "main.a=1", "-X", "main.b=2",
    ]  # fmt: skip


def test_a_field_starting_with_a_letter_is_not_quoted() -> None:
    assert goflags.split("Xmain.x=1 'a b'") == ["Xmain.x=1", "a b"]


def test_the_quote_error_says_how_go_splits() -> None:
    with pytest.raises(FlagSyntaxError) as err:
        goflags.split("-X 'a")
    assert str(err.value) == (
        "unterminated ' string in \"-X 'a\": close the quote, or drop it (Go splits flags on "
        "spaces and keeps a quoted field whole, with no escapes)"
    )


def test_only_a_release_has_a_source_hash_to_verify() -> None:
    with pytest.raises(BuildInputError) as err:
        BuildRecipe.create(version="v1.22.1-a.1").modverify_args("/m", "/src")
    assert str(err.value) == "only a pinned release has a source hash to verify"


@pytest.mark.parametrize(
    ("flag", "why"),
    [
        ("-extldflags -lc", "with CGO_ENABLED=0 there is no external linker to pass them to"),
        ("-extld clang", "with CGO_ENABLED=0 there is no external linker"),
        ("-extar ar", "with CGO_ENABLED=0 there is no external archiver"),
        ("-H linux", "it sets the executable format; the recipe builds a Linux ELF"),
        ("-r /lib", "it sets a dynamic library search path; the release is static"),
        ("-L /lib", "it adds library directories; the release links only Go packages"),
        ("-E main.x", "it changes the entry symbol"),
        ("-T 0x1000", "it changes the text address"),
        ("-linkmode auto", "it is not on the allow-list"),
        ("-buildmode default", "it is not on the allow-list"),
    ],
)
def test_valued_linker_flags_in_the_space_form_are_read_whole(flag: str, why: str) -> None:
    with pytest.raises(BuildInputError) as err:
        check_link_flags([flag])
    assert str(err.value).startswith(f"linker flag {flag!r} is refused: {why}. Allowed")


def test_parse_and_join_details() -> None:
    flags = goflags.parse(["-v", "-p", "4"], takes_value=["p"])
    assert [f.text for f in flags] == ["-v", "-p 4"]
    assert goflags.join(["it's"]) == "\"it's\"" and goflags.join(['say "x"']) == "'say \"x\"'"
    assert goflags.split("'a' 'b'") == ["a", "b"]
    with pytest.raises(FlagSyntaxError) as err:
        goflags.parse(["main.go"], takes_value=[])
    assert str(err.value) == (
        "'main.go' is not a flag: Go would stop reading flags there and treat the rest as "
        "packages or files, which the recipe chooses; give only flags"
    )
