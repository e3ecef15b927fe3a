"""The module's main object as the engine would build it, for plan tests.

``call("migrate", version=..., host=...)`` splits the keywords the way the CLI
does: constructor knobs (``dagger call --version ... migrate``) go to the
object, the rest to the function. Directories default to empty ones, as a
DefaultPath would give the engine's copy of the repository.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dagger import dag
from openfga_release import OpenfgaRelease

KNOBS = frozenset(f.name for f in dataclasses.fields(OpenfgaRelease))


def module(**knobs: Any) -> OpenfgaRelease:
    knobs.setdefault("overlay", dag.directory())
    knobs.setdefault("postgres_config", dag.directory())
    return OpenfgaRelease(**knobs)


def call(function: str, /, **kw: Any) -> Any:
    knobs = {k: v for k, v in kw.items() if k in KNOBS}
    rest = {k: v for k, v in kw.items() if k not in KNOBS}
    return getattr(module(**knobs), function)(**rest)
