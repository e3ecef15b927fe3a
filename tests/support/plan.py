"""Walk the lazy plan the real dagger-io SDK records, without an engine.

Every chained call (``dag.container().from_(...).with_exec([...])``) appends a
selection ``(type_name, name, args)`` to the object's query context. Object
arguments (directories, files, secrets, caches, services) stay objects, so
:func:`walk` recurses into them and sees the whole pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    type_name: str
    name: str
    args: dict[str, Any]
    depth: int  # 0: the object's own chain; >0: inside an object argument


def chain(obj: Any) -> list[Step]:
    """The object's own chain of calls, in order."""
    return [Step(s.type_name, s.name, dict(s.args), 0) for s in obj._ctx.selections]


def walk(obj: Any, depth: int = 0, _seen: set[int] | None = None) -> Iterator[Step]:
    """Every call in the plan: the object's chain and, recursively, its arguments'."""
    seen = _seen if _seen is not None else set()
    if id(obj) in seen:
        return
    seen.add(id(obj))
    for sel in obj._ctx.selections:
        yield Step(sel.type_name, sel.name, dict(sel.args), depth)
        for value in _objects_in(sel.args):
            yield from walk(value, depth + 1, seen)


def _leaves(value: Any, keep: Callable[[Any], bool]) -> Iterator[Any]:
    """Values inside (nested dicts and lists of) arguments that ``keep`` selects."""
    if keep(value):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v, keep)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v, keep)


def _objects_in(value: Any) -> Iterator[Any]:
    return _leaves(value, lambda v: hasattr(v, "_ctx"))


def strings_in(value: Any) -> Iterator[str]:
    return _leaves(value, lambda v: isinstance(v, str))


def calls(obj: Any, name: str) -> list[Step]:
    """All calls named ``name`` (GraphQL name, e.g. ``withExec``) anywhere in the plan."""
    return [s for s in walk(obj) if s.name == name]


def execs(obj: Any) -> list[list[str]]:
    return [list(s.args["args"]) for s in calls(obj, "withExec")]


def env_of(obj: Any) -> dict[str, str]:
    """Environment variables set on the object's own chain (last write wins)."""
    return {s.args["name"]: s.args["value"] for s in chain(obj) if s.name == "withEnvVariable"}


def images(obj: Any) -> list[str]:
    return [s.args["address"] for s in calls(obj, "from")]


def plain_strings(obj: Any) -> Iterator[str]:
    """Every string argument anywhere in the plan (to prove no secret leaks into one)."""
    for step in walk(obj):
        yield from strings_in(step.args)
