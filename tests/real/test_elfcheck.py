"""The ELF check on real binaries built here: static, PIE, dynamic, wrong arch, not ELF."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from openfga_release.standalone import elfcheck
from openfga_release.standalone.elfcheck import NotShippableError

from tests.support.gobuild_local import ensure_openfga

ELFCHECK = Path(elfcheck.__file__)
HELLO = 'package main\nimport "fmt"\nfunc main() { fmt.Println("hello") }\n'


def go_build(src: Path, out: Path, *flags: str, cgo: str = "0", arch: str = "amd64") -> Path:
    env = {**os.environ, "CGO_ENABLED": cgo, "GOOS": "linux", "GOARCH": arch, "GOFLAGS": ""}
    subprocess.run(
        ["go", "build", "-trimpath", *flags, "-o", str(out), str(src)],
        check=True,
        env=env,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def binaries(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("elf")
    src = d / "main.go"
    src.write_text(HELLO)
    c_src = d / "hello.c"
    c_src.write_text('#include <stdio.h>\nint main(void){puts("hi");return 0;}\n')
    subprocess.run(["gcc", "-o", str(d / "c-dynamic"), str(c_src)], check=True)
    (d / "script.sh").write_text("#!/bin/sh\necho hi\n")
    return {
        "static": go_build(src, d / "static", "-tags", "netgo", "-ldflags", "-s -w"),
        "static-arm64": go_build(src, d / "static-arm64", arch="arm64"),
        # The seed's broken recipe, minus the part Go itself rejects outright.
        "pie": go_build(src, d / "pie", "-buildmode=pie"),
        "c-dynamic": d / "c-dynamic",
        "script": d / "script.sh",
    }


def check(path: Path, arch: str = "amd64"):
    return elfcheck.check_shippable(path.read_bytes(), arch)


def test_static_go_binary_passes(binaries):
    report = check(binaries["static"])
    assert report.static and not report.pie
    assert report.arch == "amd64"


def test_arm64_binary_passes_for_arm64_and_fails_for_amd64(binaries):
    assert check(binaries["static-arm64"], "arm64").arch == "arm64"
    with pytest.raises(NotShippableError, match="built for arm64, expected amd64"):
        check(binaries["static-arm64"], "amd64")


def test_pie_binary_is_refused_with_the_reason(binaries):
    with pytest.raises(NotShippableError, match=r"position-independent \(ET_DYN\).*exit 243"):
        check(binaries["pie"])


def test_dynamically_linked_binary_is_refused(binaries):
    with pytest.raises(NotShippableError, match="dynamic loader"):
        check(binaries["c-dynamic"])


def test_non_elf_is_refused(binaries):
    with pytest.raises(NotShippableError, match="not an ELF"):
        check(binaries["script"])


def test_truncated_header_is_refused(binaries):
    data = binaries["static"].read_bytes()[:80]
    with pytest.raises(NotShippableError, match="truncated"):
        elfcheck.check_shippable(data, "amd64")


def test_cli_runs_standalone_with_only_the_standard_library(binaries):
    """The pipeline runs this file as a script in a plain Python image: isolated mode here."""
    ok = subprocess.run(
        [sys.executable, "-I", str(ELFCHECK), "--arch", "amd64", str(binaries["static"])],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ok, amd64 executable (ET_EXEC), static" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-I", str(ELFCHECK), "--arch", "amd64", str(binaries["pie"])],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert "refusing to ship" in bad.stderr


# ------------------------------------------------- OS/ABI, headers, build info, stamps


def test_a_freebsd_headtype_is_refused(binaries, tmp_path):
    # -H=freebsd: the linker's header type, once accepted inside --ldflags (issue 8).
    src = tmp_path / "main.go"
    src.write_text(HELLO)
    bsd = go_build(src, tmp_path / "bsd", "-ldflags", "-H=freebsd")
    with pytest.raises(NotShippableError, match="OS/ABI is 9, not Linux"):
        check(bsd)


def test_zero_program_headers_are_refused(binaries):
    data = bytearray(binaries["static"].read_bytes())
    data[56:58] = b"\0\0"  # e_phnum
    with pytest.raises(NotShippableError, match="no program headers"):
        elfcheck.check_shippable(bytes(data), "amd64")


def test_build_info_of_the_real_release_is_the_recipes():
    data = ensure_openfga().read_bytes()
    info = elfcheck.build_info(data)
    assert info["path"] == [elfcheck.MAIN_PATH]
    assert "CGO_ENABLED=0" in info["build"] and "-tags=netgo" in info["build"]
    elfcheck.check_build_info(data, "amd64")
    with pytest.raises(NotShippableError, match="GOARCH=amd64 \\(want arm64\\)"):
        elfcheck.check_build_info(data, "arm64")


def test_build_info_without_netgo_or_with_cgo_is_refused(binaries):
    # A hello-world: wrong main package, and built without the recipe's -tags netgo.
    with pytest.raises(NotShippableError) as err:
        elfcheck.check_build_info(binaries["static-arm64"].read_bytes(), "arm64")
    assert "want netgo" in str(err.value) and "want github.com/openfga/openfga/cmd/openfga" in str(
        err.value
    )


def test_stamped_version_must_be_what_the_labels_claim(tmp_path):
    """A binary stamped v9.9.9 (the --ldflags bypass the review found) cannot ship as v1.22.1."""
    release = ensure_openfga()
    ok = subprocess.run(
        [sys.executable, "-I", str(ELFCHECK), "--arch", "amd64", "--expect-version", "v1.22.1",
         "--expect-date", "2026-10-28T12:53:36Z", str(release)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "openfga version says v1.22.1" in ok.stdout
    for version, date in (("v9.9.9", None), ("v1.22.1", "2020-01-01T00:00:00Z")):
        bad = subprocess.run(
            [sys.executable, "-I", str(ELFCHECK), "--arch", "amd64", "--expect-version", version,
             *(["--expect-date", date] if date else []), str(release)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert bad.returncode == 1
        assert "a stamp was overridden" in bad.stderr


def test_a_cross_built_binary_is_checked_for_the_stamp_bytes(binaries):
    data = binaries["static-arm64"].read_bytes()
    with pytest.raises(NotShippableError, match="not stamped"):
        elfcheck.check_stamp("unused", data, "arm64", "v1.22.1-absent.1", None)
