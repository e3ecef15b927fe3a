"""Plan tests: call build-openfga and openfga-image offline on the real SDK and
read the pipeline they record (DESIGN.md §3, rung 2). No engine is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagger import dag
from openfga_release import openfga as wiring
from openfga_release.recipes import image
from openfga_release.recipes.gobuild import BuildInputError, BuildRecipe, UnsafeBuildFlagsError
from openfga_release.recipes.refs import PYTHON_IMAGE, ImageRefError
from openfga_release.recipes.releases import (
    DEFAULT_VERSION,
    GO_IMAGE,
    RELEASES,
    UnknownVersionError,
)
from openfga_release.standalone import elfcheck, modverify

from tests.support import plan
from tests.support.module import call


def go_container(binary) -> object:
    check_copy = next(
        s for s in plan.calls(binary, "withFile") if s.args["path"] == "/check/openfga"
    )
    return check_copy.args["source"]


def test_release_build_plan_runs_the_recipe_in_the_pinned_go_image():
    binary = call("build_openfga")
    expected = BuildRecipe.for_release(RELEASES[DEFAULT_VERSION])
    assert plan.execs(binary)[:4] == [
        expected.download_args(),
        expected.modverify_args("/check/modverify.py", "/src"),
        expected.verify_args(),
        expected.build_args(),
    ]
    built = go_container(binary)
    steps = plan.chain(built)
    assert steps[1].name == "from" and steps[1].args["address"] == GO_IMAGE
    env = plan.env_of(built)
    for key, value in expected.env().items():
        assert env[key] == value
    assert env["GOMODCACHE"] == wiring.GOMODCACHE and env["GOCACHE"] == wiring.GOCACHE
    workdir = [s.args["path"] for s in steps if s.name == "withWorkdir"]
    assert workdir == ["/src"]  # a verified copy, never the shared module cache
    assert steps[-1].name == "file" and steps[-1].args["path"] == "/out/openfga"


def test_release_source_is_verified_against_its_pinned_hash_before_the_build():
    binary = call("build_openfga")
    built = go_container(binary)
    copy = next(s for s in plan.chain(built) if s.name == "withDirectory")
    assert copy.args["path"] == "/src"
    verified = plan.chain(copy.args["source"])
    assert verified[-1].args == {"path": "/src"}
    check = [s.args["args"] for s in verified if s.name == "withExec"]
    assert check == [BuildRecipe.for_release(RELEASES[DEFAULT_VERSION]).modverify_args(
        "/check/modverify.py", "/src")]  # fmt: skip
    script = next(s for s in verified if s.name == "withNewFile")
    assert script.args["contents"] == Path(modverify.__file__).read_text()
    assert RELEASES[DEFAULT_VERSION].sum in check[0]
    # What it verifies is the cache's download, read after `go mod download`.
    downloaded = next(s for s in verified if s.name == "withDirectory").args["source"]
    assert plan.chain(downloaded)[-1].args["path"].endswith("github.com/openfga/openfga@v1.22.1")


def test_go_caches_are_named_volumes_mounted_where_go_looks():
    binary = call("build_openfga")
    mounts = {
        s.args["path"]: plan.chain(s.args["cache"])[-1].args["key"]
        for s in plan.chain(go_container(binary))
        if s.name == "withMountedCache"
    }
    assert mounts == {
        wiring.GOMODCACHE: "openfga-release-gomod",
        wiring.GOCACHE: "openfga-release-gobuild-golang-1.26.8-bookworm",
    }


def test_binary_is_returned_only_through_the_elf_check():
    binary = call("build_openfga", arch="arm64")
    steps = plan.chain(binary)
    assert [s.args.get("address") for s in steps if s.name == "from"] == [PYTHON_IMAGE]
    new_file = next(s for s in steps if s.name == "withNewFile")
    assert new_file.args["contents"] == Path(elfcheck.__file__).read_text()
    # The check runs after the copy, and the file handed back is read after the check.
    names = [s.name for s in steps]
    assert names.index("withFile") < names.index("withExec") < len(names) - 1
    exec_step = next(s for s in steps if s.name == "withExec")
    rel = RELEASES[DEFAULT_VERSION]
    assert exec_step.args["args"] == [
        "python3", "/check/elfcheck.py", "--arch", "arm64",
        "--expect-version", rel.version, "--expect-date", rel.date, "/check/openfga",
    ]  # fmt: skip
    assert steps[-1].name == "file" and steps[-1].args["path"] == "/check/openfga"
    assert plan.env_of(go_container(binary))["GOARCH"] == "arm64"


def test_every_image_is_pinned():
    for address in plan.images(call("openfga_image", overlay=dag.directory())):
        name, _, tag = address.rpartition(":")
        assert name and tag and tag != "latest", address
        assert any(ch.isdigit() for ch in tag), address


def test_source_build_mounts_the_checkout_and_needs_a_label():
    src = dag.directory().with_new_file("go.mod", "module github.com/openfga/openfga\n")
    with pytest.raises(BuildInputError, match="--version"):
        call("build_openfga", source=src)
    binary = call("build_openfga", source=src, version="v1.22.1-fork.1", commit="abc1234")
    steps = plan.chain(go_container(binary))
    mounted = [s for s in steps if s.name == "withDirectory"]
    assert [s.args["path"] for s in mounted] == ["/src"] and mounted[0].args["source"] is src
    assert [s.args["path"] for s in steps if s.name == "withWorkdir"] == ["/src"]
    execs = [s.args["args"] for s in steps if s.name == "withExec"]
    assert len(execs) == 1 and execs[0][:2] == ["go", "build"]  # no module download
    ldflags = execs[0][execs[0].index("-ldflags") + 1]
    assert "build.Version=v1.22.1-fork.1" in ldflags and "build.Commit=abc1234" in ldflags
    assert "build.Date" not in ldflags  # none given: never the clock


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"go_flags": ["-buildmode=pie"]}, UnsafeBuildFlagsError),
        ({"ldflags": ["-linkmode external -extldflags -static-pie"]}, UnsafeBuildFlagsError),
        ({"arch": "riscv64"}, BuildInputError),
        ({"version": "v0.0.1"}, UnknownVersionError),
        ({"version": "main"}, UnknownVersionError),
        ({"go_image": "golang:latest"}, ImageRefError),
        ({"go_image": "golang"}, ImageRefError),
        ({"go_image": "golang:1"}, ImageRefError),
        ({"go_image": "golang:1.26"}, ImageRefError),
        ({"go_image": "golang:1.26-bookworm"}, ImageRefError),
        ({"go_image": "golang:bookworm"}, ImageRefError),
    ],
)
def test_bad_input_fails_while_planning_before_any_build(kw, error):
    with pytest.raises(error):
        call("build_openfga", **kw)


@pytest.mark.parametrize(
    "go_image",
    [
        "golang:1.26.8-bookworm",
        "registry.example.com/go/golang:1.26.8",
        "golang@sha256:" + "a" * 64,
    ],
)
def test_pinned_go_images_are_accepted(go_image):
    assert go_image in plan.images(call("build_openfga", go_image=go_image))


def test_image_plan_scratch_layout_user_entrypoint_ports():
    overlay = dag.directory().with_new_file("etc/motd", "hi")
    ctr = call("openfga_image", overlay=overlay)
    steps = plan.chain(ctr)
    assert steps[0].name == "container" and steps[0].args == {"platform": "linux/amd64"}
    assert "from" not in [s.name for s in steps]  # scratch: nothing pulled as the base
    assert steps[1].name == "withRootfs"
    by_name = {s.name: s.args for s in steps}
    assert by_name["withUser"] == {"name": "65532:65532"}
    assert by_name["withEntrypoint"] == {"args": ["/usr/bin/openfga"]}
    assert by_name["withDefaultArgs"] == {"args": ["run"]}
    ports = {s.args["port"] for s in steps if s.name == "withExposedPort"}
    assert ports == {8080, 8081, 2112}

    rootfs = steps[1].args["directory"]
    rootfs_steps = plan.chain(rootfs)
    assert rootfs_steps[-1].name == "withTimestamps"
    assert rootfs_steps[-1].args["timestamp"] == RELEASES[DEFAULT_VERSION].epoch
    layout = rootfs_steps[-2].args if rootfs_steps[-2].name == "directory" else None
    assert layout == {"path": "/rootfs"}
    expected = image.layout_commands("/rootfs", "/in/openfga", image.CA_BUNDLE_PATH, "/in/overlay")
    layout_ctr = plan.chain(rootfs)
    assert [s.args["args"] for s in layout_ctr if s.name == "withExec"] == expected
    overlay_mount = next(s for s in layout_ctr if s.name == "withDirectory")
    assert overlay_mount.args == {"path": "/in/overlay", "source": overlay}


def test_image_binary_is_the_checked_one():
    ctr = call("openfga_image", overlay=dag.directory(), arch="arm64")
    copy = next(s for s in plan.calls(ctr, "withFile") if s.args["path"] == "/in/openfga")
    checked = copy.args["source"]
    assert plan.chain(checked)[-1].args["path"] == "/check/openfga"
    assert plan.chain(ctr)[0].args == {"platform": "linux/arm64"}


def test_image_labels_come_from_the_release_not_the_clock():
    labels = {
        s.args["name"]: s.args["value"]
        for s in plan.chain(call("openfga_image", version="v1.18.1", overlay=dag.directory()))
        if s.name == "withLabel"
    }
    rel = RELEASES["v1.18.1"]
    assert labels["org.opencontainers.image.version"] == "v1.18.1"
    assert labels["org.opencontainers.image.revision"] == rel.commit
    assert labels["org.opencontainers.image.created"] == rel.date
    assert labels["org.opencontainers.image.source"] == "https://github.com/openfga/openfga"
    assert labels["org.opencontainers.image.title"] == "openfga"


def test_same_inputs_give_the_same_plan():
    def render(ctr):
        return [
            (s.depth, s.name, {k: v for k, v in s.args.items() if not hasattr(v, "_ctx")})
            for s in plan.walk(ctr)
        ]

    a = render(call("openfga_image", overlay=dag.directory()))
    b = render(call("openfga_image", overlay=dag.directory()))
    assert a == b
