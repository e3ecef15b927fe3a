"""The module as the engine registers it: functions, arguments, defaults, cache
policies. `_typedefs()` builds the real registration query on the SDK; only the
final `Module.id` round-trip is replaced so it returns the query to inspect."""

from __future__ import annotations

import anyio
import dagger
import openfga_release
import pytest
from dagger.mod import default_module

from tests.support import plan


@pytest.fixture(scope="module")
def registration():
    mp = pytest.MonkeyPatch()

    async def fake_id(self):
        return self

    mp.setattr(dagger.Module, "id", fake_id)
    assert openfga_release.OpenfgaRelease  # importing the main object registers the module
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


def test_side_effecting_functions_are_never_cached(registration):
    fns = functions(registration)
    for name in ("migrate", "smoke"):
        policies = [s.args for s in fns[name] if s.name == "withCachePolicy"]
        assert policies == [{"policy": "Never"}], name


def test_e2e_is_a_check_with_the_repo_files_as_defaults(registration):
    fns = functions(registration)
    assert [s.name for s in fns["test_e2e"] if s.name == "withCheck"] == ["withCheck"]
    args = args_of(fns["test_e2e"])
    assert args["config"]["defaultPath"] == "/images/postgres"
    assert args["overlay"]["defaultPath"] == "/images/openfga/rootfs"


def test_secrets_are_secret_typed_arguments(registration):
    """Passwords, URIs and keys can only be passed as dagger.Secret (env://, file://...)."""
    fns = functions(registration)
    for fn, arg in (
        ("migrate", "datastore_uri"),
        ("migrate", "password"),
        ("smoke", "token"),
        ("postgres_service", "migrator_password"),
        ("postgres_service", "app_password"),
        ("postgres_service", "readonly_password"),
        ("postgres_service", "tls_key"),
    ):
        step = next(s for s in fns[fn] if s.name == "withArg" and s.args["name"] == arg)
        kinds = [
            s.args.get("name") for s in plan.chain(step.args["typeDef"]) if s.name == "withObject"
        ]
        assert kinds == ["Secret"], (fn, arg)


def test_postgres_functions_read_the_repository_config(registration):
    fns = functions(registration)
    for name in ("postgres_image", "postgres_rootfs", "postgres_service", "test_e2e"):
        assert args_of(fns[name])["config"]["defaultPath"] == "/images/postgres", name


def test_every_function_is_documented(registration):
    for name, chain in functions(registration).items():
        docs = [s.args["description"] for s in chain if s.name == "withDescription"]
        assert docs and docs[0].strip(), name
