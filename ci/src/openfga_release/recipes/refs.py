"""Image references: the one pinning rule every pulled image goes through.

A reference is parsed the way the OCI distribution grammar reads it
(``[host[:port]/]path[:tag][@sha256:<64 hex>]``, lowercase path components),
as an allow-list: anything else is refused. Pinned means a digest, or a tag
whose version has every component the product releases with (Go ``1.26.8``,
PostgreSQL ``17.9``, Python ``3.13.9``): a tag like ``1.26`` or ``latest``
moves with every patch release, and the same inputs would give other bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InputError

# Runs the standalone scripts (ELF check, smoke test, verify...). A full patch tag.
PYTHON_IMAGE = "python:3.13.9-slim-bookworm"

# The HTTP client every standalone script uses, pinned. sniffio is named beside it because
# httpcore 1.0.9 imports it on every lock of its async pool and, since anyio 4.11 stopped
# installing it, that failed import runs Python's whole import search each time
# (encode/httpcore#1103): measured here, it took a third of bench.py's CPU per request.
HTTPX = ("httpx==0.28.1", "sniffio==1.3.1")

_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?/)"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_REF = re.compile(
    rf"(?P<name>{_HOST}?{_PATH})(?::(?P<tag>[\w][\w.-]{{0,127}}))?(?:@(?P<digest>sha256:[0-9a-f]{{64}}))?"
)


class ImageRefError(InputError):
    """An image reference that is malformed or not pinned."""


@dataclass(frozen=True)
class ImageRef:
    name: str
    tag: str | None
    digest: str | None

    @property
    def version(self) -> tuple[int, ...] | None:
        """The leading numeric version of the tag (``17.9-bookworm`` -> (17, 9))."""
        m = re.match(r"(\d+(?:\.\d+)*)", self.tag or "")
        return tuple(int(p) for p in m.group(1).split(".")) if m else None


def parse(ref: str) -> ImageRef:
    m = _REF.fullmatch(ref)
    if not m:
        raise ImageRefError(
            f"image reference {ref!r} is not valid: write it as name:tag or name@sha256:<digest>, "
            "with a lowercase name and no spaces"
        )
    return ImageRef(m["name"], m["tag"], m["digest"])


def check_pinned(ref: str, *, what: str, example: str, parts: int) -> ImageRef:
    """``ref`` parsed, if it names a digest or a tag version with ``parts`` components."""
    image = parse(ref)
    version = image.version
    tag_pinned = version is not None and len(version) >= parts
    if image.digest is None and not tag_pinned:
        raise ImageRefError(
            f"{what} image {ref!r} is not pinned: name a full version tag or a digest "
            f"(for example {example!r}) so the same inputs give the same bytes"
        )
    return image
