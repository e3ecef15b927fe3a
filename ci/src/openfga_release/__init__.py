"""openfga-release: a Dagger module that builds, tests, publishes and deploys OpenFGA on PostgreSQL."""

from .main import OpenfgaRelease

__all__ = ["OpenfgaRelease"]
