"""The module as the engine registers it: functions, arguments, defaults, cache
policies. `_typedefs()` builds the real registration query on the SDK; only the
final `Module.id` round-trip is replaced so it returns the query to inspect."""

from __future__ import annotations

import anyio
import dagger
import openfga_release
import pytest
from dagger.mod import default_module
from openfga_release.recipes.releases import DEFAULT_VERSION

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


Key = tuple[str, str]  # (object, function); "" is the constructor


def functions(registration) -> dict[Key, list[plan.Step]]:
    """Each registered function's own definition chain, keyed by (object, function)."""
    out: dict[Key, list[plan.Step]] = {}
    for step in plan.walk(registration):
        if step.name != "withObject" or "object" not in step.args:
            continue
        type_chain = plan.chain(step.args["object"])
        obj = next(s.args["name"] for s in type_chain if s.name == "withObject")
        for s in type_chain:
            if s.name in ("withFunction", "withConstructor"):
                chain = plan.chain(s.args["function"])
                name = next(c.args["name"] for c in chain if c.name == "function")
                out[(obj, name)] = chain
    return out


def args_of(chain: list[plan.Step]) -> dict[str, dict]:
    return {s.args["name"]: s.args for s in chain if s.name == "withArg"}


MAIN = "OpenfgaRelease"


def test_objects_are_registered_under_the_module_name(registration):
    objects = [s for s in plan.walk(registration) if s.name == "withObject" and s.depth == 1]
    names = sorted(o.args["name"] for o in objects)
    assert {MAIN, "Postgres", "Backup", "KraftCloud", "Kubernetes", "Registry"} <= set(names)
    fns = {name for obj, name in functions(registration) if obj == MAIN}
    assert {"verify", "bench", "release", "release_dry_run", "migrate", "smoke"} <= fns
    assert openfga_release.OpenfgaRelease.__dagger_module__ is default_module()


def test_shared_knobs_are_constructor_arguments_with_real_defaults(registration):
    ctor = args_of(functions(registration)[(MAIN, "")])
    assert list(ctor)[:6] == ["version", "source", "commit", "date", "go_image", "overlay"]
    assert ctor["version"]["defaultValue"] == f'"{DEFAULT_VERSION}"'  # not ""
    assert ctor["go_image"]["defaultValue"] == '"golang:1.26.8-bookworm"'
    assert ctor["overlay"]["defaultPath"] == "/images/openfga/rootfs"
    assert ctor["postgres_config"]["defaultPath"] == "/images/postgres"
    for role in ("owner", "migrator", "app", "readonly"):
        assert ctor[f"{role}_role"]["defaultValue"] == f'"openfga_{role}"'


def test_build_functions_and_their_arguments(registration):
    fns = functions(registration)
    build = args_of(fns[(MAIN, "build_openfga")])
    assert list(build) == ["arch", "tags", "go_flags", "ldflags"]
    assert build["arch"]["defaultValue"] == '"amd64"'
    assert list(args_of(fns[(MAIN, "openfga_image")])) == ["arch"]


def test_build_functions_keep_the_default_cache_policy(registration):
    """Pure builds are cacheable; side-effecting functions set cache='never' (tested there)."""
    fns = functions(registration)
    for key in ((MAIN, "build_openfga"), (MAIN, "openfga_image"), ("Postgres", "image")):
        assert not [s for s in fns[key] if s.name == "withCachePolicy"], key


def test_side_effecting_functions_are_never_cached(registration):
    fns = functions(registration)
    for name in ("migrate", "smoke", "test_e2e", "release", "verify", "bench"):
        policies = [s.args for s in fns[(MAIN, name)] if s.name == "withCachePolicy"]
        assert policies == [{"policy": "Never"}], name


def test_checks_live_on_the_main_object(registration):
    fns = functions(registration)
    checks = {key for key, chain in fns.items() if any(s.name == "withCheck" for s in chain)}
    assert checks == {(MAIN, "test_e2e"), (MAIN, "release_dry_run")}


def test_secrets_are_secret_typed_arguments(registration):
    """Passwords, URIs and keys can only be passed as dagger.Secret (env://, file://...)."""
    fns = functions(registration)
    for key, arg in (
        ((MAIN, "migrate"), "datastore_uri"),
        ((MAIN, "migrate"), "password"),
        ((MAIN, "smoke"), "token"),
        (("Postgres", "service"), "migrator_password"),
        (("Postgres", "service"), "app_password"),
        (("Postgres", "service"), "readonly_password"),
        (("Postgres", "service"), "tls_key"),
        ((MAIN, "backup"), "access_key_id"),
        ((MAIN, "backup"), "secret_access_key"),
        ((MAIN, "kraftcloud"), "token"),
        ((MAIN, "kubernetes"), "kubeconfig"),
        ((MAIN, "registry"), "password"),
        ((MAIN, "verify"), "token"),
        ((MAIN, "bench"), "token"),
        ((MAIN, "release"), "password"),
        ((MAIN, "release"), "signing_key"),
        ((MAIN, "release"), "signing_password"),
    ):
        step = next(s for s in fns[key] if s.name == "withArg" and s.args["name"] == arg)
        kinds = [
            s.args.get("name") for s in plan.chain(step.args["typeDef"]) if s.name == "withObject"
        ]
        assert kinds == ["Secret"], (key, arg)


def test_postgres_sub_object_holds_its_context(registration):
    fns = functions(registration)
    getter = args_of(fns[(MAIN, "postgres")])
    assert list(getter) == ["memory", "max_connections", "base"]
    assert getter["memory"]["defaultValue"] == '"1024MiB"'
    postgres = {name for obj, name in fns if obj == "Postgres"}
    assert postgres >= {"image", "rootfs", "service", "test_tls"}


def test_every_function_is_documented(registration):
    for name, chain in functions(registration).items():
        docs = [s.args["description"] for s in chain if s.name == "withDescription"]
        assert docs and docs[0].strip(), name
