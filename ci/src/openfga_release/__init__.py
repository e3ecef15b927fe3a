"""openfga-release: build, test, publish and deploy OpenFGA on PostgreSQL with Dagger.

The Dagger object is imported on first use, so the plain modules (``python -m
openfga_release.standalone.smoke``, ``...postgres``) run without loading the Dagger SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .main import OpenfgaRelease

__all__ = ["OpenfgaRelease"]


def __getattr__(name: str) -> object:
    # The engine loads the entry point "openfga_release:OpenfgaRelease", which lands here.
    if name == "OpenfgaRelease":
        from .main import OpenfgaRelease

        return OpenfgaRelease
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
