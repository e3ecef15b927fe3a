"""Unit tests: the OpenFGA build recipe, the release pins and every guard."""

from __future__ import annotations

import pytest
from openfga_release.recipes import gobuild, releases
from openfga_release.recipes.errors import InputError
from openfga_release.recipes.gobuild import BuildInputError, BuildRecipe, UnsafeBuildFlagsError
from openfga_release.recipes.releases import RELEASES, UnknownVersionError


def recipe(**kw):
    return BuildRecipe.for_release(releases.release(releases.DEFAULT_VERSION), **kw)


def test_environment_is_static_cgo_free_and_uses_the_pinned_toolchain():
    env = recipe(arch="arm64").env()
    assert env["CGO_ENABLED"] == "0"
    assert env["GOOS"] == "linux"
    assert env["GOARCH"] == "arm64"
    assert env["GOTOOLCHAIN"] == "local"
    assert "-mod=readonly" in env["GOFLAGS"]


def test_build_args_follow_openfgas_release_recipe():
    rel = RELEASES["v1.18.1"]
    args = BuildRecipe.for_release(rel).build_args()
    assert args[:2] == ["go", "build"]
    assert "-trimpath" in args
    assert "-buildvcs=false" in args
    assert args[args.index("-tags") + 1] == "netgo"
    assert args[-3:] == ["-o", "/out/openfga", "./cmd/openfga"]
    ldflags = args[args.index("-ldflags") + 1].split()
    assert ldflags[:2] == ["-s", "-w"]
    pkg = "github.com/openfga/openfga/internal/build"
    assert f"{pkg}.Version=v1.18.1" in ldflags
    assert f"{pkg}.Commit={rel.commit}" in ldflags
    assert f"{pkg}.Date={rel.date}" in ldflags
    joined = " ".join(args)
    for bad in ("-buildmode", "-linkmode", "static-pie", "-race"):
        assert bad not in joined


def test_unknown_commit_is_not_invented():
    ldflags = recipe().link_flags()
    assert releases.RELEASES[releases.DEFAULT_VERSION].commit is None
    assert "build.Commit" not in ldflags
    assert "build.Date=2026-10-28T12:53:36Z" in ldflags


def test_extra_tags_are_merged_once_and_netgo_stays():
    args = recipe(tags=["osusergo", "netgo"]).build_args()
    assert args[args.index("-tags") + 1] == "netgo,osusergo"


def test_release_build_downloads_the_module_and_builds_in_its_root():
    r = recipe()
    assert r.download_args() == ["go", "mod", "download", "github.com/openfga/openfga@v1.22.1"]
    assert r.module_dir("/go/pkg/mod") == "/go/pkg/mod/github.com/openfga/openfga@v1.22.1"


def test_default_version_is_pinned_with_a_date():
    assert releases.DEFAULT_VERSION in RELEASES
    rel = RELEASES[releases.DEFAULT_VERSION]
    assert rel.epoch == 1793192016  # 2026-10-28T12:53:36Z


# The exact flags from the field notes (seed 001) and their relatives.
UNSAFE = [
    (["-buildmode=pie"], [], "exit 243"),
    (["-buildmode", "pie"], [], "exit 243"),
    (["-buildmode=c-shared"], [], "-buildmode=c-shared"),
    ([], ["-linkmode external -extldflags -static-pie"], "-linkmode external"),
    ([], ["-linkmode=external"], "-linkmode external"),
    ([], ["-extldflags", "-static-pie"], "static-pie"),
    ([], ["-extldflags=-static-pie"], "static-pie"),
    (["-race"], [], "needs cgo"),
]


@pytest.mark.parametrize(("go_flags", "ldflags", "why"), UNSAFE)
def test_flags_that_crashed_on_unikraft_are_refused_with_what_works(go_flags, ldflags, why):
    with pytest.raises(UnsafeBuildFlagsError) as err:
        recipe(go_flags=go_flags, ldflags=ldflags)
    msg = str(err.value)
    assert why in msg
    assert "CGO_ENABLED=0, -tags netgo" in msg  # names the recipe that works


def test_cgo_is_refused():
    with pytest.raises(UnsafeBuildFlagsError, match="exit 254"):
        gobuild.check_flags([], [], cgo_enabled=True)
    with pytest.raises(UnsafeBuildFlagsError):
        recipe(tags=["cgo"])


def test_safe_extra_flags_pass_through():
    r = recipe(go_flags=["-buildmode=exe", "-v"], ldflags=["-X main.flavour=fips"])
    args = r.build_args()
    assert "-v" in args
    assert "-X main.flavour=fips" in args[args.index("-ldflags") + 1]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"arch": "386"}, "arch '386' is not supported: use one of amd64, arm64"),
        ({"arch": "x86_64"}, "use one of amd64, arm64"),
        ({"go_flags": ["-ldflags=-s"]}, "--ldflags"),
        ({"go_flags": ["-tags=foo"]}, "--tags"),
        ({"ldflags": ["-X github.com/openfga/openfga/internal/build.Version=v9"]}, "--version"),
        ({"tags": ["bad/tag"]}, "not a valid Go build tag"),
        ({"commit": "not-a-sha"}, "not a git hash"),
    ],
)
def test_bad_build_input_is_refused_before_any_build(kw, match):
    with pytest.raises(BuildInputError, match=match):
        recipe(**kw)


@pytest.mark.parametrize("version", ["1.22.1", "v1.22", "latest", "v1.22.1 ", "v01.2.3", ""])
def test_malformed_version_names_the_expected_form(version):
    with pytest.raises(UnknownVersionError, match=r"vMAJOR\.MINOR\.PATCH"):
        releases.release(version)


def test_unknown_version_lists_the_known_ones_and_the_way_out():
    with pytest.raises(UnknownVersionError) as err:
        releases.release("v9.9.9")
    msg = str(err.value)
    assert "v1.22.1" in msg
    assert "--source" in msg


def test_bad_date_is_refused_before_any_build():
    with pytest.raises(UnknownVersionError, match="RFC 3339"):
        releases.to_epoch("yesterday")
    with pytest.raises(UnknownVersionError, match="2026-10-28T12:53:36Z"):
        recipe(date="28/10/2026")


# ------------------------------------------------- dates, versions, provenance (issue 8)


@pytest.mark.parametrize(
    "date",
    [
        "2026-10-28 12:53:36Z",  # a space: the late linker usage dump of the review
        "2026-10-28T12:53:36",  # naive: the epoch would depend on the machine's zone
        "2026-W44-3",  # an ISO week date, once stamped verbatim
        "2026-10-28",
        "2026-02-30T00:00:00Z",  # not a calendar day
        "1969-12-31T23:59:59Z",  # before 1970: a negative epoch
        "2038-01-19T03:14:08Z",  # one second past the 32-bit range
        "9999-12-31T23:59:59Z",
        "2026-10-28T12:53:36Z\n",
        "2026-10-28T12:53:36+0200",
    ],
)
def test_dates_are_strict_rfc3339_with_an_offset_and_in_range(date):
    with pytest.raises(UnknownVersionError, match=r"RFC 3339|1970-01-01 to 2038-01-19|calendar"):
        releases.to_epoch(date)


@pytest.mark.parametrize(
    ("date", "epoch"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2038-01-19T03:14:07Z", 2**31 - 1),
        ("2026-10-28T14:53:36+02:00", 1793192016),
        ("2026-10-28T12:53:36.123456789Z", 1793192016),
    ],
)
def test_dates_at_the_bounds_are_accepted(date, epoch):
    assert releases.to_epoch(date) == epoch


@pytest.mark.parametrize(
    "version", ["v1.22.1\n", "v1.22.1-x\n", "\nv1.22.1", "v1.22.1-" + "a" * 57]
)
def test_versions_are_matched_whole_and_bounded(version):
    with pytest.raises(UnknownVersionError, match=r"vMAJOR\.MINOR\.PATCH"):
        releases.check_version_format(version)


def test_a_64_character_label_is_the_longest_accepted():
    label = "v1.22.1-" + "a" * 56
    assert len(label) == releases.MAX_VERSION_LENGTH
    assert releases.check_version_format(label) == label


@pytest.mark.parametrize("version", ["v1.22.1", "v9.9.9", "v1.21.0"])
def test_a_source_build_cannot_pass_for_a_release(version):
    with pytest.raises(BuildInputError, match="need their own label"):
        gobuild.recipe_for(version, from_source=True)


def test_a_source_build_with_a_suffix_is_labelled_as_such():
    r = gobuild.recipe_for("v1.22.1-acme.1", from_source=True, commit="abc1234")
    assert r.version == "v1.22.1-acme.1" and r.module_sum is None
    assert "build.Version=v1.22.1-acme.1" in r.link_flags()


@pytest.mark.parametrize("kw", [{"commit": "0" * 40}, {"date": "2026-10-28T12:53:36Z"}])
def test_a_pinned_release_keeps_its_own_commit_and_date(kw):
    with pytest.raises(BuildInputError, match="for --source builds"):
        gobuild.recipe_for("v1.22.1", from_source=False, **kw)


@pytest.mark.parametrize("commit", ["ABC1234", "abc123", "abc1234\n", "g" * 7, "a" * 41])
def test_commits_are_whole_lowercase_hex(commit):
    with pytest.raises(BuildInputError, match="not a git hash"):
        gobuild.recipe_for("v1.22.1-acme.1", from_source=True, commit=commit)


def test_release_recipes_carry_the_pinned_source_hash():
    r = gobuild.recipe_for("v1.22.1", from_source=False)
    assert r.module_sum == RELEASES["v1.22.1"].sum
    argv = r.modverify_args("/m.py", "/src")
    assert argv[argv.index("--sum") + 1] == RELEASES["v1.22.1"].sum
    with pytest.raises(BuildInputError):
        gobuild.recipe_for("v1.22.1-acme.1", from_source=True).modverify_args("/m.py", "/src")


def test_release_and_date_messages_word_for_word():
    with pytest.raises(UnknownVersionError) as err:
        releases.release("v9.9.9")
    assert str(err.value) == (
        "OpenFGA v9.9.9 is not a release this module pins (known: v1.22.1, v1.21.0, v1.19.0, "
        "v1.18.1). Add it to ci/src/openfga_release/recipes/releases.py with its tag date after "
        "checking it builds, or pass --source with a checkout to build that tree instead."
    )
    fix = "write an RFC 3339 time with an offset, such as 2026-10-28T12:53:36Z"
    for date, why in (("x", "is not a strict RFC 3339 time"),
                      ("2026-02-30T00:00:00Z", "is not a real calendar time"),
                      ("2039-01-01T00:00:00Z", "is outside 1970-01-01 to 2038-01-19 (file times "
                                               "are 32-bit)")):  # fmt: skip
        with pytest.raises(UnknownVersionError) as err:
            releases.to_epoch(date)
        assert str(err.value) == f"date {date!r} {why}: {fix}"


@pytest.mark.parametrize("image", ["golang:1.26.8-bookworm", "golang@sha256:" + "b" * 64])
def test_go_images_pinned_to_a_patch_or_a_digest_pass(image):
    assert releases.check_go_image(image) == image


@pytest.mark.parametrize("image", ["golang:1.26", "golang:latest", "golang"])
def test_go_images_that_move_are_refused(image):
    with pytest.raises(InputError) as err:
        releases.check_go_image(image)
    assert str(err.value) == (
        f"Go image {image!r} is not pinned: name a full version tag or a digest (for example "
        "'golang:1.26.8-bookworm') so the same inputs give the same bytes"
    )
