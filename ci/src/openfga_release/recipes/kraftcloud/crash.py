"""Why an instance stopped, as one sentence a person can act on.

Plain module. The platform reports three numbers for a stopped instance
(unikraft-cloud 0.3.0, ``models_gen.Instance``; kraftkit ``stop`` package):

* ``stop_reason``, a bitmask of who stopped it:
  bit 4 Forced, 3 User, 2 Platform, 1 App exited (``exit_code`` set),
  0 Kernel exited (``stop_code`` set). 15 = ``-UPAK`` a clean user stop,
  7 = ``--PAK`` the platform (scale-to-zero), 3 = ``---AK`` the app exited by
  itself, 1 = ``----K`` a kernel crash, 28 = ``FUP--`` a forced stop.
* ``stop_code``, packed: bits 23-16 errno (Linux errno.h), bit 15 shutdown
  table (0 inittable, 1 termtable), bits 14-8 init level, bits 7-0 reason
  (0 OK, 1 EXP assertion, 2 MATH, 3 INVLOP, 4 PGFAULT, 5 SEGFAULT, 6 HWERR,
  7 SECERR). A page fault with errno ENOMEM is "out of memory".
* ``exit_code``, the application's own exit status.

Field notes (seeds 000/001): OpenFGA built ``-buildmode=pie -linkmode
external -extldflags -static-pie`` under ``CGO_ENABLED=0`` exited 243 about
100 ms after boot; a musl static-PIE build exited 254 in init. base-compat's
loader reports a failed load as a negative errno (243 = -13 EACCES,
254 = -2 ENOENT), so an early 243/254 is a binary the runtime could not load.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Sequence
from dataclasses import dataclass

from ..migrate import redact

# stop_reason bits
KERNEL, APP, PLATFORM, USER, FORCED = 1, 2, 4, 8, 16
_FLAGS = ((FORCED, "F"), (USER, "U"), (PLATFORM, "P"), (APP, "A"), (KERNEL, "K"))

REASONS = {0: "OK", 1: "EXP", 2: "MATH", 3: "INVLOP", 4: "PGFAULT", 5: "SEGFAULT",
           6: "HWERR", 7: "SECERR"}
_REASON_WORDS = {
    1: "an assertion or explicit crash in the kernel",
    2: "an arithmetic error",
    3: "an invalid CPU instruction",
    4: "a page fault",
    5: "a segmentation fault",
    6: "a hardware error",
    7: "a security violation (control-flow protection)",
}
LOAD_FAILURE_EXIT_CODES = {243: "EACCES", 254: "ENOENT"}
BUILD_FLAGS_FIX = (
    "rebuild OpenFGA static and non-PIE (CGO_ENABLED=0, -tags netgo, no -buildmode=pie, no "
    "-linkmode external; `dagger call build-openfga` does this) and package it again"
)
LOG_LINES = 8


def stop_flags(stop_reason: int) -> str:
    """``-UPAK`` style letters, as the platform documents them."""
    return "".join(letter if stop_reason & bit else "-" for bit, letter in _FLAGS)


@dataclass(frozen=True)
class StopCode:
    value: int

    @property
    def errno(self) -> int:
        return (self.value >> 16) & 0xFF

    @property
    def termtable(self) -> bool:
        return bool(self.value & 0x8000)

    @property
    def init_level(self) -> int:
        return (self.value >> 8) & 0x7F

    @property
    def reason(self) -> int:
        return self.value & 0xFF

    @property
    def errno_name(self) -> str:
        return _errno.errorcode.get(self.errno, f"errno {self.errno}") if self.errno else ""

    @staticmethod
    def pack(reason: int, *, errno: int = 0, init_level: int = 0, termtable: bool = False) -> int:
        """The inverse, for tests and the fake's fault injection."""
        return (errno & 0xFF) << 16 | (0x8000 if termtable else 0) | (init_level & 0x7F) << 8 | (
            reason & 0xFF)


@dataclass(frozen=True)
class Stop:
    """What the platform said about one stopped instance."""

    name: str
    stop_reason: int | None
    stop_code: int | None = None
    exit_code: int | None = None
    uptime_ms: int | None = None
    memory_mb: int | None = None


def is_clean(stop: Stop) -> bool:
    """A stop nobody needs to explain: asked for, or the app exited 0."""
    reason = stop.stop_reason or 0
    kernel_ok = stop.stop_code is None or StopCode(stop.stop_code).reason == 0
    if reason & (USER | PLATFORM):
        return kernel_ok and (stop.exit_code in (None, 0))
    return bool(reason & APP) and stop.exit_code == 0 and kernel_ok


def explain(stop: Stop, log_tail: str = "", secrets: Sequence[str] = ()) -> str:
    """One sentence: what stopped the instance and the likely fix.

    ``log_tail`` (the instance's last console lines) is redacted with
    ``secrets`` and any URI password before it is quoted.
    """
    reason = stop.stop_reason or 0
    flags = stop_flags(reason)
    who = f"instance {stop.name} stopped ({flags}, stop_reason {reason})"
    lines = [ln for ln in redact(log_tail, secrets).splitlines() if ln.strip()][-LOG_LINES:]
    quoted = (": last log lines: " + " | ".join(ln.strip() for ln in lines)) if lines else ""

    if reason & FORCED:
        return (f"{who}: it was force-stopped (by {'a user' if reason & USER else 'the platform'})"
                ", so neither the app nor the kernel reported anything; start it again")
    code = StopCode(stop.stop_code) if stop.stop_code is not None else None
    if code is not None and code.reason:
        what = _REASON_WORDS.get(code.reason, f"kernel stop reason {code.reason}")
        where = f"at init level {code.init_level}" + (" while shutting down" if code.termtable
                                                       else "")
        errno_part = f" ({code.errno_name})" if code.errno else ""
        if code.reason == 4 and code.errno == _errno.ENOMEM:
            mem = f" than {stop.memory_mb} MiB" if stop.memory_mb else ""
            return (f"{who}: the kernel ran out of memory (page fault, ENOMEM) {where}; give the "
                    f"instance more memory{mem} (--memory-mb), or lower the app's own memory "
                    f"settings (PostgreSQL: size its config for the instance, "
                    f"recipes/postgres.py unikraft-memory){quoted}")
        if code.init_level and code.init_level < 6 and not code.termtable:
            return (f"{who}: the kernel crashed with {what}{errno_part} {where}, before the app "
                    f"ran: the image or its runtime is broken; rebuild the image for "
                    f"base-compat, or {BUILD_FLAGS_FIX}{quoted}")
        return (f"{who}: the kernel crashed with {what}{errno_part} {where}; if the app was "
                f"running this is the app's crash (a bad binary or a bug): {BUILD_FLAGS_FIX}, "
                f"and report it with the log{quoted}")
    if reason & APP and stop.exit_code not in (None, 0):
        early = stop.uptime_ms is not None and stop.uptime_ms < 2000
        if stop.exit_code in LOAD_FAILURE_EXIT_CODES and (early or not lines):
            name = LOAD_FAILURE_EXIT_CODES[stop.exit_code]
            return (f"{who}: the app exited {stop.exit_code} (-{name} from the loader) "
                    f"{'right after boot' if early else 'with no output'}: base-compat could "
                    f"not load the binary; {BUILD_FLAGS_FIX}{quoted}")
        return (f"{who}: the app exited with code {stop.exit_code}; read its last log lines "
                f"and fix what they name{quoted}")
    if reason & (USER | PLATFORM):
        origin = "a user (API call)" if reason & USER else "the platform (e.g. scale-to-zero)"
        return f"{who}: stopped cleanly by {origin}; nothing to fix"
    if reason & APP:
        return f"{who}: the app exited with code 0 by itself; nothing to fix if it was a job"
    return (f"{who}: the platform gave no stop reason; read the instance's logs"
            f"{quoted or ' (none were available)'}")
