"""Plan tests for the backup wiring (rung 2: the real dagger-io SDK, no engine)."""

from __future__ import annotations

from typing import Any

import anyio
import dagger
import pytest
from dagger import dag
from dagger.mod._module import FUNCTION_DEF_KEY
from openfga_release import backup as bw
from openfga_release.recipes import backup as bk
from openfga_release.recipes import postgres as pg
from openfga_release.recipes.errors import InputError

from tests.support import plan
from tests.support.engine import Answer, FakeEngine

ENDPOINT = "https://s3.eu-west-1.amazonaws.com"


def obj(**kw: Any) -> bw.Backup:
    kw.setdefault("endpoint", ENDPOINT)
    kw.setdefault("bucket", "acme-backups")
    kw.setdefault("prefix", "openfga/prod")
    kw.setdefault("access_key_id", dag.secret("env://TEST_BACKUP_S3_ID"))
    kw.setdefault("secret_access_key", dag.secret("env://TEST_BACKUP_S3_KEY"))
    return bw.Backup(**kw)


def password() -> dagger.Secret:
    return dag.secret("env://TEST_BACKUP_PG_PASSWORD")


def argv_of(ctr: dagger.Container) -> list[str]:
    return plan.execs(ctr)[-1]


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_backup_runs_the_recipe_cli_as_the_read_only_role_in_the_pinned_image() -> None:
    ctr = obj().backup_plan("db.example.com", password(), keep=7, max_age_days=30)
    assert plan.images(ctr) == [pg.POSTGRES_IMAGE]
    argv = argv_of(ctr)
    assert argv[:4] == [*bw.CLI, "backup"]
    assert flag(argv, "--user") == "openfga_readonly"
    assert flag(argv, "--sslmode") == "require"  # a public host
    assert flag(argv, "--endpoint") == ENDPOINT and flag(argv, "--prefix") == "openfga/prod"
    assert flag(argv, "--keep") == "7" and flag(argv, "--max-age-days") == "30"
    pip = next(e for e in plan.execs(ctr) if "install" in e and e[0].endswith("pip"))
    assert f"boto3=={bk.BOTO3_VERSION}" in pip
    assert set(bk.IMAGE_REQUIREMENTS) <= set(pip) and all("==" in r for r in bk.IMAGE_REQUIREMENTS)


def test_every_credential_is_a_secret_variable_and_nothing_else() -> None:
    b = obj()
    pw = password()
    ctr = b.backup_plan("db.internal", pw, pg_ca=dag.directory().file("ca.crt"))
    secret_vars = {s.args["name"]: s.args["secret"] for s in plan.calls(ctr, "withSecretVariable")}
    assert secret_vars == {bk.PASSWORD_ENV: pw, bk.ACCESS_KEY_ENV: b.access_key_id,
                           bk.SECRET_KEY_ENV: b.secret_access_key}  # fmt: skip
    env = plan.env_of(ctr)
    assert not set(bk.SECRET_ENV) & set(env)
    assert bw.RUN_ID_ENV in env
    for text in plan.plain_strings(ctr):
        assert "TEST_BACKUP" not in text or text.startswith("env://")
    argv = argv_of(ctr)
    assert flag(argv, "--sslrootcert") == bw.PG_CA_PATH


def test_restore_goes_through_the_migrator_as_the_owner() -> None:
    ctr = obj(s3_ca=dag.directory().file("s3-ca.crt")).restore_plan(
        "postgres.openfga.svc", password(), backup="openfga-backup-openfga-20261101T031700Z",
        overwrite="openfga")
    argv = argv_of(ctr)
    assert argv[:4] == [*bw.CLI, "restore"]
    assert flag(argv, "--user") == "openfga_migrator" and flag(argv, "--owner") == "openfga_owner"
    assert flag(argv, "--overwrite") == "openfga"
    assert flag(argv, "--ca-file") == bw.S3_CA_PATH
    files = {s.args["path"] for s in plan.calls(ctr, "withFile")}
    assert bw.S3_CA_PATH in files


def test_every_run_is_new_and_never_cached() -> None:
    a = obj().backup_plan("db.internal", password())
    b = obj().backup_plan("db.internal", password())
    assert plan.env_of(a)[bw.RUN_ID_ENV] != plan.env_of(b)[bw.RUN_ID_ENV]
    for name in ("backup", "restore", "list_backups", "verify"):
        meta = getattr(bw.Backup.__dict__[name], FUNCTION_DEF_KEY)
        assert meta.cache == "never"


@pytest.mark.parametrize(("kw", "call", "words"), [
    ({"endpoint": "http://s3.example.com"}, {}, "https"),
    ({"bucket": "Bad_Bucket"}, {}, "bucket"),
    ({}, {"user": "postgres"}, "superuser"),
    ({}, {"keep": 0}, "keep"),
])  # fmt: skip
def test_bad_arguments_fail_before_any_container(kw: dict[str, Any], call: dict[str, Any],
                                                 words: str) -> None:  # fmt: skip
    with pytest.raises(InputError, match=words):
        obj(**kw).backup_plan("db.internal", password(), **call)
    with pytest.raises(InputError, match="name the database"):
        obj().restore_plan("db.internal", password(), overwrite="other")


def test_the_image_runs_as_postgres_with_the_recipes() -> None:
    ctr = obj().image()
    assert plan.images(ctr) == [pg.POSTGRES_IMAGE]
    assert plan.calls(ctr, "withUser")[-1].args["name"] == "postgres"
    env = plan.env_of(ctr)
    assert env["PYTHONPATH"] == bk.PACKAGE_DIR
    dirs = {s.args["path"] for s in plan.calls(ctr, "withDirectory")}
    assert bk.PACKAGE_DIR in dirs
    with pytest.raises(InputError, match="pinned"):
        bw.backup_image("postgres:17")


def test_a_failed_run_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine().install(monkeypatch)
    said = "error: backup openfga-backup-x is corrupted: pick an earlier backup\nDETAIL: x\n"
    engine.respond("-m", lambda argv, ctr: Answer(exit_code=1, stderr=said))
    with pytest.raises(bk.BackupError) as err:
        anyio.run(lambda: obj().restore("db.internal", password()))
    assert str(err.value) == "backup openfga-backup-x is corrupted: pick an earlier backup"
    engine.respond("-m", lambda argv, ctr: Answer(stdout='{"backup": "b"}\n'))
    assert anyio.run(lambda: obj().backup("db.internal", password())) == '{"backup": "b"}\n'


def test_the_object_registers_with_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every annotation resolves and every field is serializable: the SDK builds the
    registration (only the final Module.id round-trip is replaced)."""
    import openfga_release
    from dagger.mod import default_module

    from tests.plan.test_registration import args_of, functions

    async def fake_id(self: Any) -> Any:
        return self

    monkeypatch.setenv("DAGGER_MAIN_OBJECT", "OpenfgaRelease")
    monkeypatch.setattr(dagger.Module, "id", fake_id)
    assert openfga_release.OpenfgaRelease
    fns = functions(anyio.run(default_module()._typedefs))
    mine = {name: list(args_of(chain)) for (obj_, name), chain in fns.items() if obj_ == "Backup"}
    assert set(mine) == {"backup", "restore", "list_backups", "verify", "image"}
    assert "password" in mine["backup"] and "overwrite" in mine["restore"]
