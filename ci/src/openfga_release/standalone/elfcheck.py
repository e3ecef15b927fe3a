"""Prove a binary is a static, non-PIE ELF executable for the expected architecture.

Standard library only, on purpose: the ``build-openfga`` pipeline copies this very
file into a pinned Python container and runs it on the freshly built binary
before returning it, and the tests import it. Exit status 0 means shippable.

Why: a PIE or dynamically linked binary crashed at load on Unikraft base-compat
(exit 243, seed 001); a binary for the wrong architecture never starts at all.

    python3 elfcheck.py --arch amd64 /out/openfga
"""

from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass

ET_EXEC, ET_DYN = 2, 3
PT_DYNAMIC, PT_INTERP = 2, 3
MACHINES = {62: "amd64", 183: "arm64", 3: "386", 40: "arm"}
TYPES = {1: "relocatable", ET_EXEC: "executable (ET_EXEC)", ET_DYN: "PIE or shared object (ET_DYN)"}


class NotShippableError(ValueError):
    """The binary would not run on Unikraft base-compat (or in a scratch image)."""


@dataclass(frozen=True)
class ElfReport:
    arch: str
    elf_type: int
    has_interpreter: bool
    has_dynamic: bool

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
    if e_phoff + e_phentsize * e_phnum > len(data):
        raise NotShippableError("truncated ELF: program headers run past the end of the file")
    p_types = {struct.unpack_from("<I", data, e_phoff + i * e_phentsize)[0] for i in range(e_phnum)}
    return ElfReport(
        arch=MACHINES.get(e_machine, f"machine {e_machine}"),
        elf_type=e_type,
        has_interpreter=PT_INTERP in p_types,
        has_dynamic=PT_DYNAMIC in p_types,
    )


def check_shippable(data: bytes, arch: str) -> ElfReport:
    """Raise :class:`NotShippableError` unless ``data`` is static, non-PIE and ``arch``."""
    report = inspect_elf(data)
    problems = []
    if report.arch != arch:
        problems.append(f"built for {report.arch}, expected {arch}")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, help="expected GOARCH: amd64 or arm64")
    parser.add_argument("binary")
    args = parser.parse_args(argv)
    with open(args.binary, "rb") as fh:
        data = fh.read()
    try:
        report = check_shippable(data, args.arch)
    except NotShippableError as err:
        print(f"elfcheck: {args.binary}: {err}", file=sys.stderr)
        return 1
    print(f"elfcheck: {args.binary}: ok, {report.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
