"""The error classes every guard and step raises: one base, one contract.

``str(error)`` is the whole message a user sees (Dagger shows only that): it
names the problem and the fix, and never holds a secret it was given. Input
errors are raised while a pipeline is planned, before any container, service
or remote call; step errors describe a run that failed, with redacted output.
"""

from __future__ import annotations


class ReleaseError(Exception):
    """Base of every error this module raises on purpose."""


class InputError(ReleaseError, ValueError):
    """An argument that cannot be right; raised before anything runs."""


class StepError(ReleaseError, RuntimeError):
    """A step that ran and failed: one sentence with the fix; ``detail`` is redacted output."""

    def __init__(self, sentence: str, detail: str = "") -> None:
        super().__init__(sentence)
        self.detail = detail
