"""openfga-release: build, test, publish and deploy OpenFGA on PostgreSQL with Dagger."""

from .main import OpenfgaRelease

__all__ = ["OpenfgaRelease"]
