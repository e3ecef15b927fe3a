"""Real execution of the build recipe (DESIGN.md §3, rung 3).

This machine's Go builds the real OpenFGA release with the pipeline's own
:class:`BuildRecipe`; the binary is checked with the pipeline's ELF check, laid
out with the image's own layout commands, and run inside that layout with
``chroot`` (no libc, no shell: as in the scratch image).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from openfga_release.recipes import image
from openfga_release.recipes.gobuild import BuildRecipe
from openfga_release.recipes.releases import DEFAULT_VERSION, RELEASES
from openfga_release.standalone import elfcheck

from tests.support.gobuild_local import StepFailed, ensure_openfga, recipe_env, run_recipe
from tests.support.net import free_port

pytestmark = pytest.mark.integration

HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
UID = int(image.USER.split(":")[0])


@pytest.fixture(scope="module")
def binary() -> Path:
    return ensure_openfga(DEFAULT_VERSION)


@pytest.fixture(scope="module")
def rootfs(binary, tmp_path_factory, repo) -> Path:
    """The image's root filesystem, laid out by the image's own commands."""
    root = tmp_path_factory.mktemp("image") / "rootfs"
    overlay = repo / "images" / "openfga" / "rootfs"
    for cmd in image.layout_commands(str(root), str(binary), HOST_CA_BUNDLE, str(overlay)):
        subprocess.run(cmd, check=True)
    return root


def test_release_binary_is_static_non_pie_x86_64(binary):
    report = elfcheck.check_shippable(binary.read_bytes(), "amd64")
    assert report.static and not report.pie


def test_layout_matches_the_image_spec(rootfs):
    files = sorted(str(p.relative_to(rootfs)) for p in rootfs.rglob("*") if p.is_file())
    assert files == [
        "etc/group",
        "etc/passwd",
        "etc/ssl/certs/ca-certificates.crt",
        "usr/bin/openfga",
    ]
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert (rootfs / "usr/bin/openfga").stat().st_mode & 0o777 == 0o755
    assert f"openfga:x:{UID}:{UID}:" in (rootfs / "etc/passwd").read_text()
    # Nothing a dynamic binary could lean on: no loader, no libc, no shell.
    for absent in ("lib", "lib64", "usr/lib", "bin/sh"):
        assert not (rootfs / absent).exists(), absent


def test_version_inside_the_image_layout_reports_the_release(rootfs):
    rel = RELEASES[DEFAULT_VERSION]
    out = subprocess.run(
        ["chroot", f"--userspec={image.USER}", str(rootfs), image.BINARY_PATH, "version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    # `openfga version` writes to stderr.
    assert f"`{DEFAULT_VERSION}`" in out.stderr
    assert rel.date in out.stderr
    assert "dev" not in out.stderr.split("`")[1]


def test_server_runs_as_non_root_inside_the_layout(rootfs):
    """`openfga run` (the image's default args) serves from the scratch layout as uid 65532."""
    http, grpc, metrics = free_port(), free_port(), free_port()
    proc = subprocess.Popen(
        [
            "chroot",
            f"--userspec={image.USER}",
            str(rootfs),
            *image.ENTRYPOINT,
            *image.DEFAULT_ARGS,
            "--datastore-engine",
            "memory",
            "--http-addr",
            f"127.0.0.1:{http}",
            "--grpc-addr",
            f"127.0.0.1:{grpc}",
            "--metrics-addr",
            f"127.0.0.1:{metrics}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = httpx.get(f"http://127.0.0.1:{http}/healthz", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert body == {"status": "SERVING"}, (
            proc.stdout.read() if proc.poll() is not None else body
        )
        # chroot(1) execs the server in place, so this pid is the server's own.
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert f"Uid:\t{UID}\t" in status
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_build_from_a_clean_build_cache_is_byte_identical(binary, tmp_path):
    """Same inputs, same bytes: -trimpath, no VCS stamp, dates from the release. The shared
    test binary was built with a warm build cache; this one starts from an empty one."""
    recipe = BuildRecipe.for_release(RELEASES[DEFAULT_VERSION])
    cache = tmp_path / "gocache"
    fresh = run_recipe(recipe, tmp_path / "openfga", cache)
    shutil.rmtree(cache)
    assert sha256(fresh) == sha256(binary)
    assert os.path.getsize(fresh) > 10_000_000  # the real server, not a stub


# ------------------------------------------------- the overlay cannot replace what was checked


def lay_out(root: Path, binary: Path, overlay: Path) -> subprocess.CompletedProcess[str]:
    """Run the image's own layout commands; the first failure is returned."""
    for cmd in image.layout_commands(str(root), str(binary), HOST_CA_BUNDLE, str(overlay)):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            return proc
    return proc


def test_an_overlay_file_never_replaces_the_checked_binary_or_ca_bundle(binary, tmp_path):
    overlay = tmp_path / "overlay"
    (overlay / "usr/bin").mkdir(parents=True)
    (overlay / "usr/bin/openfga").write_text("#!/bin/sh\necho evil\n")
    (overlay / "etc/ssl/certs").mkdir(parents=True)
    (overlay / "etc/ssl/certs/ca-certificates.crt").write_text("not the CA bundle\n")
    root = tmp_path / "rootfs"
    assert lay_out(root, binary, overlay).returncode == 0
    assert sha256(root / "usr/bin/openfga") == sha256(binary)
    assert (root / "etc/ssl/certs/ca-certificates.crt").read_bytes() == Path(
        HOST_CA_BUNDLE
    ).read_bytes()


@pytest.mark.parametrize(
    ("link", "target"),
    [("usr/bin", "../tmp"), ("usr", "tmp"), ("etc/ssl", "../tmp"), ("tmp", "usr")],
)
def test_an_overlay_symlink_on_a_checked_path_is_refused(binary, tmp_path, link, target):
    overlay = tmp_path / "overlay"
    (overlay / link).parent.mkdir(parents=True, exist_ok=True)
    (overlay / link).symlink_to(target)
    failed = lay_out(tmp_path / "rootfs", binary, overlay)
    assert failed.returncode != 0
    assert f"overlay: /{link} is a symbolic link in the overlay" in failed.stderr


# ------------------------------------------------- a poisoned module cache never ships


def test_a_poisoned_module_cache_is_refused_before_the_build(tmp_path):
    """What a -toolexec run did in the field: rewrite the release source inside the shared
    module cache. The next release build refuses it (the hash is pinned in releases.py)."""
    recipe = BuildRecipe.for_release(RELEASES[DEFAULT_VERSION])
    gomodcache = tmp_path / "gomod"
    env = recipe_env(recipe, tmp_path / "gocache", str(gomodcache))
    subprocess.run(recipe.download_args(), env=env, check=True, capture_output=True)
    main_go = Path(recipe.module_dir(str(gomodcache))) / "cmd/openfga/main.go"
    main_go.chmod(0o644)
    main_go.write_text(main_go.read_text() + "\n// poisoned\n")
    out = tmp_path / "out" / "openfga"
    with pytest.raises(StepFailed, match="not the released one"):
        run_recipe(recipe, out, tmp_path / "gocache", gomodcache=str(gomodcache))
    assert not out.exists()
    subprocess.run(["chmod", "-R", "u+w", str(gomodcache)], check=True)  # the cache is read-only


def test_the_final_check_refuses_a_rootfs_that_is_not_what_was_checked(binary, tmp_path):
    root = tmp_path / "rootfs"
    (tmp_path / "empty").mkdir()
    assert lay_out(root, binary, tmp_path / "empty").returncode == 0
    verify = image.verify_command(str(root), str(binary), HOST_CA_BUNDLE)
    assert subprocess.run(verify, capture_output=True).returncode == 0
    (root / "tmp").chmod(0o755)
    tmp_mode = subprocess.run(verify, capture_output=True, text=True)
    assert tmp_mode.returncode == 1 and "1777" in tmp_mode.stderr
    (root / "tmp").chmod(0o1777)
    (root / "usr/bin/openfga").write_bytes(b"\x7fELF not the checked one")
    swapped = subprocess.run(verify, capture_output=True, text=True)
    assert swapped.returncode == 1 and "differs from the checked one" in swapped.stderr
