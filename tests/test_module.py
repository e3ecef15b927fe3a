"""The module as the engine registers it: functions, arguments, defaults, cache
policies. `_typedefs()` builds the real registration query on the SDK; only the
final `Module.id` round-trip is replaced so it returns the query to inspect."""

from __future__ import annotations

import anyio
import dagger
import openfga_release
import pytest
from dagger.mod import default_module

from tests import plan


@pytest.fixture(scope="module")
def registration():
    mp = pytest.MonkeyPatch()

    async def fake_id(self):
        return self

    mp.setattr(dagger.Module, "id", fake_id)
    try:
        yield anyio.run(default_module()._typedefs)
    finally:
        mp.undo()


def functions(registration) -> dict[str, list[plan.Step]]:
    """Each registered function's own definition chain, by name."""
    out = {}
    for step in plan.walk(registration):
        if step.name == "withFunction":
            fn = step.args["function"]
            chain = plan.chain(fn)
            name = next(s.args["name"] for s in chain if s.name == "function")
            out[name] = chain
    return out


def args_of(chain: list[plan.Step]) -> dict[str, dict]:
    return {s.args["name"]: s.args for s in chain if s.name == "withArg"}


def test_main_object_is_registered_under_the_module_name(registration):
    objects = [s for s in plan.walk(registration) if s.name == "withObject" and s.depth == 1]
    assert [o.args["name"] for o in objects] == ["OpenfgaRelease"]
    assert openfga_release.OpenfgaRelease.__dagger_module__ is default_module()


def test_build_functions_and_their_arguments(registration):
    fns = functions(registration)
    assert {"build_openfga", "openfga_image"} <= set(fns)
    build = args_of(fns["build_openfga"])
    assert list(build) == [
        "version",
        "source",
        "arch",
        "commit",
        "date",
        "tags",
        "go_flags",
        "ldflags",
        "go_image",
    ]
    assert build["arch"]["defaultValue"] == '"amd64"'
    assert build["go_image"]["defaultValue"] == '"golang:1.26.8-bookworm"'
    image = args_of(fns["openfga_image"])
    assert image["overlay"]["defaultPath"] == "/images/openfga/rootfs"


def test_build_functions_keep_the_default_cache_policy(registration):
    """Pure builds are cacheable; side-effecting functions set cache='never' (tested there)."""
    fns = functions(registration)
    for name in ("build_openfga", "openfga_image"):
        assert not [s for s in fns[name] if s.name == "withCachePolicy"], name
