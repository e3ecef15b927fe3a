"""Prove a binary is a static, non-PIE ELF executable for the expected architecture.

Standard library only, on purpose: the ``build-openfga`` pipeline copies this very
file into a pinned Python container and runs it on the freshly built binary
before returning it, and the tests import it. Exit status 0 means shippable.

Why: a PIE or dynamically linked binary crashed at load on Unikraft base-compat
(exit 243, seed 001); a binary for the wrong architecture or OS never starts at all.

Beyond the ELF headers it reads the binary's Go build information (what
``go version -m`` prints) and requires the recipe's settings, and it checks the
stamped version is the one the image labels will claim: by running
``openfga version`` when the binary is for this machine, else by finding the
stamp's bytes.

    python3 elfcheck.py --arch amd64 [--expect-version v1.22.1 --expect-date ...] /out/openfga
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass

ET_EXEC, ET_DYN = 2, 3
PT_DYNAMIC, PT_INTERP = 2, 3
MACHINES = {62: "amd64", 183: "arm64", 3: "386", 40: "arm"}
TYPES = {1: "relocatable", ET_EXEC: "executable (ET_EXEC)", ET_DYN: "PIE or shared object (ET_DYN)"}
LINUX_OSABI = (0, 3)  # ELFOSABI_NONE (System V, what Go writes for linux) and ELFOSABI_LINUX
BUILDINFO_MAGIC = b"\xff Go buildinf:"
# What the recipe's build must have recorded (go version -m); the tags must include netgo.
REQUIRED_SETTINGS = {"-buildmode": "exe", "-compiler": "gc", "-trimpath": "true",
                     "CGO_ENABLED": "0", "GOOS": "linux"}  # fmt: skip
MAIN_PATH = "github.com/openfga/openfga/cmd/openfga"
_VERSION_LINE = re.compile(r"OpenFGA version `([^`]*)` build from `([^`]*)` on `([^`]*)`")


class NotShippableError(ValueError):
    """The binary would not run on Unikraft base-compat (or in a scratch image)."""


@dataclass(frozen=True)
class ElfReport:
    arch: str
    elf_type: int
    has_interpreter: bool
    has_dynamic: bool
    osabi: int = 0

    @property
    def static(self) -> bool:
        return not self.has_interpreter and not self.has_dynamic

    @property
    def pie(self) -> bool:
        return self.elf_type == ET_DYN

    def describe(self) -> str:
        link = "static" if self.static else "dynamically linked"
        kind = TYPES.get(self.elf_type, f"type {self.elf_type}")
        return f"{self.arch} {kind}, {link}"


def inspect_elf(data: bytes) -> ElfReport:
    """Read the ELF header and program headers of a 64-bit little-endian binary."""
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise NotShippableError("not an ELF file (bad magic): was the build output overwritten?")
    if data[4] != 2 or data[5] != 1:
        raise NotShippableError(
            "not a 64-bit little-endian ELF: only linux/amd64 and linux/arm64 are built"
        )
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    e_phoff = struct.unpack_from("<Q", data, 32)[0]
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    if e_phnum == 0 or e_phentsize < 4:
        raise NotShippableError("no program headers: the file cannot be loaded as a program")
    if e_phoff + e_phentsize * e_phnum > len(data):
        raise NotShippableError("truncated ELF: program headers run past the end of the file")
    p_types = {struct.unpack_from("<I", data, e_phoff + i * e_phentsize)[0] for i in range(e_phnum)}
    return ElfReport(
        arch=MACHINES.get(e_machine, f"machine {e_machine}"),
        elf_type=e_type,
        has_interpreter=PT_INTERP in p_types,
        has_dynamic=PT_DYNAMIC in p_types,
        osabi=data[7],
    )


def check_shippable(data: bytes, arch: str) -> ElfReport:
    """Raise :class:`NotShippableError` unless ``data`` is static, non-PIE and ``arch``."""
    report = inspect_elf(data)
    problems = []
    if report.arch != arch:
        problems.append(f"built for {report.arch}, expected {arch}")
    if report.osabi not in LINUX_OSABI:
        problems.append(f"its OS/ABI is {report.osabi}, not Linux (was -H given to the linker?)")
    if report.pie:
        problems.append(
            "it is position-independent (ET_DYN); PIE builds crashed at load on Unikraft "
            "base-compat (exit 243): drop -buildmode=pie"
        )
    elif report.elf_type != ET_EXEC:
        problems.append(f"it is not an executable ({TYPES.get(report.elf_type, report.elf_type)})")
    if report.has_interpreter:
        problems.append(
            "it asks for a dynamic loader (PT_INTERP); a scratch image has no libc: "
            "build with CGO_ENABLED=0 and Go's internal linker"
        )
    elif report.has_dynamic:
        problems.append("it has a dynamic section (PT_DYNAMIC): it is not fully static")
    if problems:
        raise NotShippableError(
            f"refusing to ship this binary ({report.describe()}): " + "; ".join(problems)
        )
    return report


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise NotShippableError("truncated Go build information")


def build_info(data: bytes) -> dict[str, list[str]]:
    """The Go build information (``go version -m``): ``path``, ``mod`` and ``build``
    lines, keyed by their first word (``build`` lines as ``key=value``)."""
    at = data.find(BUILDINFO_MAGIC)
    while at != -1 and at % 16:
        at = data.find(BUILDINFO_MAGIC, at + 1)
    if at == -1 or len(data) < at + 32 or not data[at + 15] & 0x2:
        raise NotShippableError(
            "no Go build information (Go 1.18+ inline format): not a binary built by go build"
        )
    n, pos = _uvarint(data, at + 32)
    n, pos = _uvarint(data, pos + n)  # skip the Go version string; then the module info
    modinfo = data[pos : pos + n]
    if len(modinfo) >= 33 and modinfo[-17:-16] == b"\n":
        modinfo = modinfo[16:-16]
    out: dict[str, list[str]] = {}
    for line in modinfo.decode(errors="replace").splitlines():
        word, _, rest = line.partition("\t")
        out.setdefault(word, []).append(rest.replace("\t", " ").strip())
    return out


def check_build_info(data: bytes, arch: str) -> None:
    """The settings the recipe uses, as the Go toolchain recorded them in the binary."""
    info = build_info(data)
    settings = dict(item.partition("=")[::2] for item in info.get("build", []))
    wanted = {**REQUIRED_SETTINGS, "GOARCH": arch}
    wrong = [f"{k}={settings.get(k, '(unset)')} (want {v})" for k, v in wanted.items()
             if settings.get(k) != v]  # fmt: skip
    if "netgo" not in settings.get("-tags", "").split(","):
        wrong.append(f"-tags={settings.get('-tags', '')} (want netgo among them)")
    if info.get("path") != [MAIN_PATH]:
        wrong.append(f"main package {info.get('path')} (want {MAIN_PATH})")
    if wrong:
        raise NotShippableError(
            "its Go build information is not the recipe's: " + "; ".join(wrong)
        )


def _native(arch: str) -> bool:
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine()
    ) == arch and sys.platform.startswith("linux")


def check_stamp(path: str, data: bytes, arch: str, version: str, date: str | None) -> str:
    """The stamped version (and date) are the ones the labels will claim."""
    if not _native(arch):
        stamp = f"{version}".encode()
        if stamp not in data:
            raise NotShippableError(f"the version {version} is not stamped into the binary")
        return f"version {version} found in the binary (not run: built for {arch})"
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [path, "version"], capture_output=True, text=True, timeout=30, cwd=tmp,
            env={"PATH": os.defpath, "HOME": tmp, "TMPDIR": tmp},
        )  # fmt: skip
    found = _VERSION_LINE.search(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not found:
        raise NotShippableError(
            f"`openfga version` did not report a version (exit {proc.returncode})"
        )
    if found.group(1) != version or (date is not None and found.group(3) != date):
        raise NotShippableError(
            f"the binary says version {found.group(1)} built on {found.group(3)}, but the release "
            f"is {version}{f' of {date}' if date else ''}: a stamp was overridden"
        )
    return f"openfga version says {found.group(1)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, help="expected GOARCH: amd64 or arm64")
    parser.add_argument("--expect-version", help="the version the labels claim (stamp check)")
    parser.add_argument("--expect-date", help="the date the labels claim")
    parser.add_argument("binary")
    args = parser.parse_args(argv)
    with open(args.binary, "rb") as fh:
        data = fh.read()
    try:
        report = check_shippable(data, args.arch)
        notes = [report.describe()]
        if args.expect_version:
            check_build_info(data, args.arch)
            notes.append(
                check_stamp(args.binary, data, args.arch, args.expect_version, args.expect_date)
            )
    except (NotShippableError, OSError, subprocess.TimeoutExpired) as err:
        print(f"elfcheck: {args.binary}: {err}", file=sys.stderr)
        return 1
    print(f"elfcheck: {args.binary}: ok, {'; '.join(notes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
