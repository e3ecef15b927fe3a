"""Plan test for the KraftCloud backup wiring (the real dagger-io SDK, no engine): the
program container runs ``... kraftcloud backup`` with the secrets only as secret
variables, in the pinned image, never cached. The run itself is in
tests/unit/test_kraftcloud_backup.py against the contract fake."""

from __future__ import annotations

from typing import Any

import anyio
import dagger
import pytest
from dagger import dag
from dagger.mod._module import FUNCTION_DEF_KEY
from openfga_release import kraftcloud as kc
from openfga_release.recipes import refs
from openfga_release.recipes.errors import InputError
from openfga_release.recipes.kraftcloud.plan import BACKUP_SECRET_ENV, BackupJob

from tests.support import plan
from tests.support.engine import Answer, FakeEngine

IMAGE = "index.unikraft.io/team/openfga-backup@sha256:" + "c" * 64


def obj() -> kc.KraftCloud:
    return kc.KraftCloud(token=dag.secret("env://TEST_UKC_TOKEN"), name="prod")


def secrets() -> dict[str, dagger.Secret]:
    return {k: dag.secret(f"env://TEST_UKC_{k.upper()}") for k in BACKUP_SECRET_ENV}


def job(**kw: Any) -> BackupJob:
    return BackupJob(**{"name": "prod", "image": IMAGE, "endpoint": "https://s3.example.com",
                        "bucket": "backups", "prefix": "p", **kw})


def test_backup_runs_the_recipe_with_secrets_only_as_secret_variables() -> None:
    k, s = obj(), secrets()
    ctr = k.backup_plan(job(), s)
    argv = plan.execs(ctr)[-1]
    assert argv[:4] == ["python", "-m", "openfga_release.recipes.kraftcloud", "backup"]
    assert argv[argv.index("--backup-image") + 1] == IMAGE
    assert argv[argv.index("--name") + 1] == "prod"
    assert argv[argv.index("--s3-endpoint") + 1] == "https://s3.example.com"
    assert plan.images(ctr) == [refs.PYTHON_IMAGE]
    pip = next(e for e in plan.execs(ctr) if e[:2] == ["pip", "install"])
    assert all("==" in p for p in pip[2:] if not p.startswith("-"))
    bound = {c.args["name"]: c.args["secret"] for c in plan.calls(ctr, "withSecretVariable")}
    assert bound[kc.TOKEN_ENV] is k.token
    for key, env in BACKUP_SECRET_ENV.items():
        assert bound[env] is s[key]
    for text in plan.plain_strings(ctr):
        assert "TEST_UKC" not in text or text.startswith("env://")
    assert set(plan.env_of(ctr)) <= {"PYTHONPATH", kc.RUN_ID_ENV}


def test_the_backup_is_never_cached_and_refuses_a_tag_before_any_container() -> None:
    assert getattr(kc.KraftCloud.__dict__["backup"], FUNCTION_DEF_KEY).cache == "never"
    a, b = obj().backup_plan(job(), secrets()), obj().backup_plan(job(), secrets())
    assert plan.env_of(a)[kc.RUN_ID_ENV] != plan.env_of(b)[kc.RUN_ID_ENV]
    with pytest.raises(InputError, match="digest"):
        anyio.run(lambda: obj().backup(
            "index.unikraft.io/team/openfga-backup:1.0", "https://s3.example.com", "backups",
            *secrets().values()))


def test_the_backup_function_returns_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine().install(monkeypatch)
    engine.respond("-m", lambda argv, ctr: Answer(
        stdout="backup prod-backup: exit 0\n" if argv[3] == "backup" else ""))
    s = secrets()
    out = anyio.run(lambda: obj().backup(IMAGE, "https://s3.example.com", "backups",
                                         s["s3_access_key"], s["s3_secret_key"],
                                         s["readonly"], s3_prefix="p"))
    assert out == "backup prod-backup: exit 0\n"
