"""OpenFGA releases this project knows how to build, and the pinned toolchain.

Plain module (no dagger import): the Dagger functions and the tests share it.

A release is pinned with the facts the module proxy gives for its tag: the
commit time (``Date``) and, where the proxy records its origin, the commit
hash. Nothing here comes from the wall clock, so the same version always gives
the same ldflags and the same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from . import refs
from .errors import InputError

OPENFGA_MODULE = "github.com/openfga/openfga"
OPENFGA_MAIN_PACKAGE = "./cmd/openfga"
OPENFGA_SOURCE_URL = "https://github.com/openfga/openfga"

# The Go toolchain every build uses. GOTOOLCHAIN=local keeps it the one that
# runs: OpenFGA's go.mod may name a newer `toolchain`, and a silent download
# of it would make the build depend on what the network served that day.
GO_VERSION = "1.26.8"
GO_IMAGE = f"golang:{GO_VERSION}-bookworm"

_VERSION_RE = re.compile(r"v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?")
MAX_VERSION_LENGTH = 64  # it goes into ldflags, labels and tags
# RFC 3339 with a mandatory offset: a naive time would depend on the machine's zone.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")
MAX_EPOCH = 2**31 - 1  # file times and labels stay within 32 bits (2038-01-19)


class UnknownVersionError(InputError):
    """The version string is malformed, or not a release this project pins."""


@dataclass(frozen=True)
class Release:
    """One OpenFGA release tag and the build facts stamped into its binary."""

    version: str
    date: str  # RFC 3339 commit time of the tag, from the module proxy
    sum: str  # go.sum's h1: hash of the module zip (the checksum database's record)
    commit: str | None = None  # full hash when the proxy records the origin

    @property
    def epoch(self) -> int:
        return to_epoch(self.date)


def to_epoch(date: str) -> int:
    """A strict RFC 3339 time (``T``, an offset) as Unix seconds, from 1970 to 2038."""
    fix = "write an RFC 3339 time with an offset, such as 2026-10-28T12:53:36Z"
    if not _RFC3339.fullmatch(date):
        raise UnknownVersionError(f"date {date!r} is not a strict RFC 3339 time: {fix}")
    try:
        epoch = int(datetime.fromisoformat(date).timestamp())  # Python 3.11+ reads "Z"
    except ValueError:
        raise UnknownVersionError(f"date {date!r} is not a real calendar time: {fix}") from None
    if not 0 <= epoch <= MAX_EPOCH:
        raise UnknownVersionError(
            f"date {date!r} is outside 1970-01-01 to 2038-01-19 (file times are 32-bit): {fix}"
        )
    return epoch


# Newest first. Each entry was built here with the pipeline's recipe.
RELEASES: dict[str, Release] = {
    r.version: r
    for r in (
        Release("v1.22.1", "2026-10-28T12:53:36Z",
                "h1:gl5DiX841ZK3GSTAbgUUYEpiAfAK4EZFMQYW1NQmK8U="),
        Release("v1.21.0", "2026-09-20T16:11:15Z",
                "h1:NQIrzLjUaWw+ZgFr78+qMcoYnHroPfqeQ8Z8ZMA530Y="),
        Release("v1.19.0", "2026-08-25T14:48:10Z",
                "h1:YUyc1txav3vcur3mh1lb1/FuFsL9pw9nbUoiHd68Mrk="),
        Release("v1.18.1", "2026-06-29T18:39:00Z",
                "h1:scfXscw1co45EJxPHSWQ9OXso+MnmkkGEdQ3+Y2P4mo=",
                "69efbd95b3d44afb2e2567d485dcc792c7d79e3f"),
    )
}
DEFAULT_VERSION = "v1.22.1"


def check_version_format(version: str) -> str:
    """Return ``version`` if it is exactly ``vMAJOR.MINOR.PATCH[-pre]`` (no trailing newline)."""
    if len(version) > MAX_VERSION_LENGTH or not _VERSION_RE.fullmatch(version):
        raise UnknownVersionError(
            f"version {version!r} is not a release tag: expected the form vMAJOR.MINOR.PATCH "
            f"such as {DEFAULT_VERSION!r} (with the leading 'v', at most "
            f"{MAX_VERSION_LENGTH} characters)"
        )
    return version


def release(version: str) -> Release:
    """The pinned release for ``version``, or a clear error naming the known ones."""
    check_version_format(version)
    try:
        return RELEASES[version]
    except KeyError:
        known = ", ".join(RELEASES)
        raise UnknownVersionError(
            f"OpenFGA {version} is not a release this module pins (known: {known}). "
            "Add it to ci/src/openfga_release/recipes/releases.py with its tag date after checking "
            "it builds, or pass --source with a checkout to build that tree instead."
        ) from None


def check_go_image(ref: str) -> str:
    """A Go toolchain image pinned to MAJOR.MINOR.PATCH or a digest (refs' one rule)."""
    refs.check_pinned(ref, what="Go", example=GO_IMAGE, parts=3)
    return ref
