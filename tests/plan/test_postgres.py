"""Plan tests for postgres_pipeline (rung 2: the real dagger-io SDK, no engine),
plus the two recipe steps that can run here for real: the rootfs prune and
what it relies on (nothing but llvmjit links LLVM).
"""

from __future__ import annotations

import inspect
import re
import subprocess
from pathlib import Path
from typing import Any

import dagger
import pytest
from dagger import dag
from openfga_release import postgres as pp
from openfga_release.recipes import postgres as pg
from openfga_release.recipes.errors import InputError

from tests.support import plan
from tests.support.module import call
from tests.support.pg import bindir

PLAINTEXT = "Plaintext-Secret-Value-42"


def secrets() -> dict[str, dagger.Secret]:
    return {kind: dag.secret(f"env://TEST_{kind.upper()}_PW") for kind in pg.PASSWORD_ENV}


def service(**kw: Any) -> tuple[dagger.Service, dict[str, dagger.Secret]]:
    s = secrets()
    return pp.postgres_service(dag.directory(), s["migrator"], s["app"], s["readonly"], **kw), s


def steps(obj: Any, name: str) -> list[plan.Step]:
    return [s for s in plan.chain(obj) if s.name == name]


# ------------------------------------------------------------------ image

def source_path(file: Any) -> str:
    """The path a ``config.file(...)`` argument names in its directory."""
    last = plan.chain(file)[-1]
    assert last.name == "file"
    return str(last.args["path"])


def test_image_is_the_pinned_official_one_with_our_files() -> None:
    config = dag.directory()
    ctr = pp.postgres_image(config)
    assert plan.images(ctr) == [pg.POSTGRES_IMAGE]
    dirs = {s.args["path"]: s.args for s in steps(ctr, "withDirectory")}
    assert list(dirs) == [pg.CONFIG_DIR]
    assert dirs[pg.CONFIG_DIR]["source"] is config
    assert dirs[pg.CONFIG_DIR]["include"] == list(pg.CONFIG_FILES)
    # Scripts file by file, modes explicit: not the host checkout's.
    files = {s.args["path"]: s.args for s in steps(ctr, "withFile")}
    expected = {
        pg.ENTRYPOINT: (pg.START_SCRIPT, 0o755),
        **{f"{pg.INITDB_DIR}/{n}": (f"initdb.d/{n}", 0o644) for n in pg.INIT_FILES},
    }
    assert {path: (source_path(a["source"]), a["permissions"]) for path, a in files.items()} \
        == expected
    assert all(plan.chain(a["source"])[0].name == "directory" for a in files.values())
    new = {s.args["path"]: s.args["contents"] for s in steps(ctr, "withNewFile")}
    assert new == {f"{pg.CONFIG_DIR}/memory.conf": pg.render_memory_conf()}
    assert steps(ctr, "withEntrypoint")[0].args["args"] == [pg.ENTRYPOINT]
    assert steps(ctr, "withDefaultArgs")[0].args["args"] == []
    assert [s.args["port"] for s in steps(ctr, "withExposedPort")] == [pg.PORT]
    env = plan.env_of(ctr)
    assert env == {**pg.IMAGE_ENV, **pg.Names().env()}
    assert not [k for k in env if "PASSWORD" in k]


def test_init_files_are_not_executable_whatever_the_host_says() -> None:
    """The official runner *runs* an executable *.sh in a child shell (losing
    00-openfga-env.sh's exports, see test_postgres_server.py); the pipeline
    fixes 0644 on both init files, and they are all of initdb.d."""
    files = {s.args["path"]: s.args["permissions"]
             for s in steps(pp.postgres_image(dag.directory()), "withFile")}
    init = {p: m for p, m in files.items() if p.startswith(pg.INITDB_DIR + "/")}
    assert init == {f"{pg.INITDB_DIR}/00-openfga-env.sh": 0o644,
                    f"{pg.INITDB_DIR}/10-openfga.sql": 0o644}
    assert pg.INIT_FILE_MODE & 0o111 == 0


def test_image_build_prunes_then_checks_the_config() -> None:
    execs = plan.execs(pp.postgres_image(dag.directory()))
    assert execs == [pg.prune_args(), ["mkdir", "-p", pg.VOLUME],
                     pg.config_check_args(pg.CONFIG_DIR)]


def test_image_arguments_reach_the_plan() -> None:
    ctr = pp.postgres_image(dag.directory(), memory="4GiB", max_connections=120,
                            names=pg.Names(app="authz_app", database="authz"),
                            base="postgres:16.10-bookworm")
    assert plan.images(ctr) == ["postgres:16.10-bookworm"]
    new = {s.args["path"]: s.args["contents"] for s in steps(ctr, "withNewFile")}
    assert new[f"{pg.CONFIG_DIR}/memory.conf"] == pg.render_memory_conf("4GiB", 120)
    env = plan.env_of(ctr)
    assert env["POSTGRES_APP_ROLE"] == "authz_app"
    assert env["POSTGRES_OPENFGA_DB"] == "authz"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"base": "postgres:latest"}, "is not pinned"),
        ({"base": "postgres:17"}, "is not pinned"),
        ({"memory": "200MiB"}, "too small for the config"),
        ({"memory": "1GiB", "max_connections": 400}, "too small for max_connections=400"),
        ({"memory": "a lot"}, "is not a size"),
        ({"app_role": "App"}, "POSTGRES_APP_ROLE ('App') is not a valid name"),
        ({"readonly_role": "openfga_app"}, "is used twice"),
        ({"database": "template1"}, "is a reserved name"),
    ],
)
def test_bad_arguments_fail_while_planning(kw: dict[str, Any], message: str) -> None:
    """Through the Dagger function users call, and through the service (names as pg.Names)."""
    name_keys = {"database": "database", "owner_role": "owner", "migrator_role": "migrator",
                 "app_role": "app", "readonly_role": "readonly"}

    def service_with(**k: Any) -> Any:
        names = {name_keys[key]: k.pop(key) for key in list(k) if key in name_keys}
        return service(names=pg.Names(**names), **k)[0]

    for build in (lambda **k: call("postgres", **k).image(), service_with):
        with pytest.raises(InputError, match=re.escape(message)):
            build(**dict(kw))


def test_rootfs_is_the_images_filesystem() -> None:
    rootfs = pp.postgres_rootfs(dag.directory(), memory="2GiB")
    assert isinstance(rootfs, dagger.Directory)
    chain = plan.chain(rootfs)
    assert chain[-1].name == "rootfs"
    new = [s.args["contents"] for s in plan.calls(rootfs, "withNewFile")]
    assert new == [pg.render_memory_conf("2GiB")]
    assert plan.images(rootfs) == [pg.POSTGRES_IMAGE]


# ---------------------------------------------------------------- service

def test_service_passwords_travel_only_as_secrets() -> None:
    svc, s = service()
    mounts = plan.calls(svc, "withMountedSecret")
    by_path = {m.args["path"]: m.args["source"] for m in mounts}
    for kind, secret in s.items():
        assert by_path[f"{pp.SECRETS_DIR}/{kind}"] is secret
    # mode needs an owner to take effect (SDK docs): root reads them (the start
    # script, before switching users), the postgres user never can. The SDK
    # leaves out an argument equal to its default (0o400, also the engine's).
    sdk_mode = inspect.signature(dagger.Container.with_mounted_secret).parameters["mode"].default
    for kind in s:
        mount = next(m for m in mounts if m.args["path"] == f"{pp.SECRETS_DIR}/{kind}")
        assert mount.args["owner"] == "root:root"
        assert mount.args.get("mode", sdk_mode) == 0o400
    env = {st.args["name"]: st.args["value"] for st in plan.calls(svc, "withEnvVariable")}
    for kind, var in pg.PASSWORD_ENV.items():
        assert env[var + "_FILE"] == f"{pp.SECRETS_DIR}/{kind}"
        assert var not in env
    # A secret object appears nowhere but as the source of a secret mount.
    for step in plan.walk(svc):
        for value in step.args.values():
            if isinstance(value, dagger.Secret):
                assert step.name == "withMountedSecret", step
    assert not plan.calls(svc, "withSecretVariable")


def test_service_never_holds_a_plaintext_secret() -> None:
    s = dag.set_secret("pw", PLAINTEXT)
    key = dag.set_secret("key", PLAINTEXT + "-key")
    svc = pp.postgres_service(dag.directory(), s, s, s, tls_cert=dag.directory().file("c"),
                              tls_key=key)
    outside = [st for st in plan.walk(svc) if st.name != "setSecret"]
    assert not [st for st in outside if PLAINTEXT in repr(st.args)]


def test_service_runs_the_entrypoint_with_ephemeral_tls_by_default() -> None:
    svc, _ = service()
    assert plan.chain(svc)[-1].name == "asService"
    assert plan.chain(svc)[-1].args["useEntrypoint"] is True
    files = {st.args["path"]: st.args for st in plan.chain(svc) if st.name == "withFile"}
    key = files[f"{pg.TLS_DIR}/{pg.SERVER_KEY}"]
    assert key["permissions"] == 0o600
    # The key and certificate come from the ephemeral CA's directory.
    key_file = plan.chain(key["source"])
    assert key_file[-1].name == "file" and key_file[-1].args["path"] == pg.SERVER_KEY
    assert pg.tls_commands(pp.EPHEMERAL_TLS_OUT, pp.EPHEMERAL_TLS_WORK,
                           list(pp.DEFAULT_HOSTNAMES))[1] in plan.execs(svc)


def test_service_with_given_certificate_mounts_the_key_as_a_secret() -> None:
    cert = dag.directory().file("server.crt")
    key = dag.secret("file://./server.key")
    svc, _ = service(tls_cert=cert, tls_key=key)
    mount = next(m for m in plan.calls(svc, "withMountedSecret")
                 if m.args["path"] == f"{pg.TLS_DIR}/{pg.SERVER_KEY}")
    assert mount.args["source"] is key
    assert mount.args["owner"] == "postgres" and mount.args["mode"] == 0o600
    files = {st.args["path"]: st.args["source"] for st in plan.calls(svc, "withFile")}
    assert files[f"{pg.TLS_DIR}/{pg.SERVER_CERT}"] is cert
    assert not [st for st in plan.walk(svc) if st.args.get("address") != pg.POSTGRES_IMAGE
                and st.name == "from"]  # no CA container


@pytest.mark.parametrize("which", ["tls_cert", "tls_key"])
def test_service_needs_both_certificate_and_key(which: str) -> None:
    given = {"tls_cert": dag.directory().file("c"), "tls_key": dag.secret("env://K")}
    with pytest.raises(pg.PostgresConfigError, match="give both --tls-cert and --tls-key"):
        service(**{which: given[which]})


def test_ephemeral_tls_runs_the_shared_commands() -> None:
    tls = pp.ephemeral_tls(["postgres", "10.0.0.1"])
    assert plan.images(tls) == [pg.POSTGRES_IMAGE]
    assert plan.execs(tls) == pg.tls_commands(pp.EPHEMERAL_TLS_OUT, pp.EPHEMERAL_TLS_WORK,
                                              ["postgres", "10.0.0.1"])
    assert plan.chain(tls)[-1].args == {"path": pp.EPHEMERAL_TLS_OUT}
    with pytest.raises(pg.PostgresConfigError):
        pp.ephemeral_tls(["not a host"])


# ------------------------------------------- the recipe's steps, run for real

def test_prune_expands_globs_and_tolerates_missing_paths(tmp_path: Path) -> None:
    keep = tmp_path / "usr/lib/postgresql/17/bin/postgres"
    gone = [tmp_path / "usr/lib/postgresql/17/lib/bitcode/x.bc",
            tmp_path / "usr/lib/postgresql/17/lib/llvmjit.so",
            tmp_path / "usr/lib/x86_64-linux-gnu/libLLVM-16.so.1",
            tmp_path / "usr/lib/x86_64-linux-gnu/libz3.so.4",
            tmp_path / "usr/share/doc/postgresql/README"]
    for f in [keep, *gone]:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    args = pg.prune_args(tuple(str(tmp_path) + p for p in pg.ROOTFS_PRUNE))
    subprocess.run(args, check=True)
    assert keep.exists()
    assert not [f for f in gone if f.exists()]
    assert not (tmp_path / "usr/lib/postgresql/17/lib/bitcode").exists()


def test_only_the_jit_provider_links_llvm() -> None:
    """Pruning LLVM and Z3 is safe with jit = off: no binary or other module
    needs them (ldd lists indirect libraries too: llvmjit -> libLLVM -> libz3)."""
    libdir = bindir().parent / "lib"
    elves = [*bindir().iterdir(), *libdir.glob("*.so")]
    deps = {p.name: subprocess.run(["ldd", str(p)], capture_output=True, text=True).stdout
            for p in elves}
    assert [name for name, out in deps.items() if "libLLVM" in out] == ["llvmjit.so"]
    assert [name for name, out in deps.items() if "libz3" in out] == ["llvmjit.so"]
