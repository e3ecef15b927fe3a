"""Plan tests for the KraftCloud wiring (rung 2: the real dagger-io SDK, no engine).

Packaging is proven at this rung only: neither official CLI can be built or
downloaded here, and there is no registry of Unikraft's to push to.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import dagger
import pytest
import yaml
from dagger import dag
from dagger.mod._module import FUNCTION_DEF_KEY
from openfga_release import kraftcloud as kc
from openfga_release.recipes import backup as bk
from openfga_release.recipes import refs
from openfga_release.recipes.errors import InputError
from openfga_release.recipes.kraftcloud import package as kpkg

from tests.support import plan
from tests.support.engine import Answer, FakeEngine

SHA = "e" * 64
FGA = "index.unikraft.io/team/openfga@sha256:" + "1" * 64
PG = "index.unikraft.io/team/openfga-postgres@sha256:" + "2" * 64

REPO = Path(__file__).resolve().parents[2]


def obj(**kw: Any) -> kc.KraftCloud:
    kw.setdefault("token", dag.secret("env://TEST_UKC_TOKEN"))
    kw.setdefault("kraftfiles", dag.directory())
    kw.setdefault("user", "team")
    kw.setdefault("kraft_sha256", SHA)
    return kc.KraftCloud(**kw)


def secrets() -> dict[str, dagger.Secret]:
    return {k: dag.secret(f"env://TEST_UKC_{k.upper()}") for k in kc.SECRET_ENV}


def test_the_cli_is_pinned_and_checksum_verified_before_use() -> None:
    ctr = obj().package_plan("openfga", dag.directory(), "v1.22.1")
    execs = plan.execs(ctr)
    install = execs[0]
    assert install[:2] == ["python3", "-c"] and "sha256" in install[2]
    assert install[3] == kpkg.KRAFT_URL.format(v=kpkg.KRAFT_VERSION)
    assert re.fullmatch(r"\d+\.\d+\.\d+", kpkg.KRAFT_VERSION)
    assert install[4] == SHA and install[5] == kpkg.KRAFT_BIN
    assert "checksum mismatch" in install[2]
    assert plan.images(ctr) == [refs.PYTHON_IMAGE]


def test_an_unpinned_checksum_is_refused_before_any_container() -> None:
    with pytest.raises(InputError, match="kraft-sha256"):
        obj(kraft_sha256="").package_plan("openfga", dag.directory(), "v1")
    with pytest.raises(InputError, match="not valid"):
        obj(user="Team!").package_plan("openfga", dag.directory(), "v1")


def test_package_packs_the_directory_then_copies_then_reads_the_digest() -> None:
    rootfs = dag.directory()
    ctr = obj().package_plan("postgres", rootfs, "17.9")
    execs = plan.execs(ctr)
    pkg, push, digest = execs[-3], execs[-2], execs[-1]
    ref = "index.unikraft.io/team/openfga-postgres:17.9"
    assert pkg[:2] == [kpkg.KRAFT_BIN, "pkg"] and "--push" not in pkg and pkg[-1] == "."
    assert pkg[pkg.index("--name") + 1] == ref
    assert pkg[pkg.index("--rootfs-type") + 1] == "cpio"
    assert pkg[pkg.index("--plat") + 1] == "kraftcloud"
    assert push[:3] == ["sh", "-c", kc.PUSH_RETRY] and push[4:7] == [kpkg.KRAFT_BIN, "pkg",
                                                                      "push"]
    assert push[-1] == ref
    assert digest[-4:] == ["digest", "team", "openfga-postgres", "17.9"]
    dirs = {s.args["path"]: s.args["source"] for s in plan.calls(ctr, "withDirectory")}
    assert dirs[f"{kc.WORK}/postgres/rootfs"] is rootfs  # the rootfs DIRECTORY, no Dockerfile
    assert [s.name for s in plan.chain(ctr)[-3:]] == ["withExec"] * 3  # pkg, push, digest


def test_the_token_is_only_a_secret() -> None:
    k = obj()
    for ctr in (k.package_plan("openfga", dag.directory(), "v1"),
                k.deploy_plan("deploy", FGA, PG, secrets())):
        bound = {s.args["name"]: s.args["secret"] for s in plan.calls(ctr, "withSecretVariable")}
        assert any(v is k.token for v in bound.values())
        for text in plan.plain_strings(ctr):
            assert "TEST_UKC" not in text or text.startswith("env://")
        assert set(plan.env_of(ctr)) <= {"PYTHONPATH", kc.RUN_ID_ENV,
                                         "KRAFTKIT_NO_CHECK_UPDATES"}


def test_deploy_runs_the_recipe_with_pinned_sdk_and_secret_env() -> None:
    s = secrets()
    ctr = obj().deploy_plan("deploy", FGA, PG, s)
    argv = plan.execs(ctr)[-1]
    assert argv[:4] == ["python", "-m", "openfga_release.recipes.kraftcloud", "deploy"]
    assert argv[argv.index("--openfga-image") + 1] == FGA
    pip = next(e for e in plan.execs(ctr) if e[:2] == ["pip", "install"])
    assert "unikraft-cloud==0.3.0" in pip
    assert all("==" in p for p in pip[2:] if not p.startswith("-"))
    bound = {c.args["name"]: c.args["secret"] for c in plan.calls(ctr, "withSecretVariable")}
    for key, env in kc.SECRET_ENV.items():
        assert bound[env] is s[key]


def test_unpinned_images_fail_before_any_container() -> None:
    with pytest.raises(InputError, match="digest"):
        obj().deploy_plan("deploy", "openfga:latest", PG, secrets())


def test_side_effects_are_never_cached_and_runs_are_fresh() -> None:
    for name in ("package", "deploy", "dry_run", "status"):
        assert getattr(kc.KraftCloud.__dict__[name], FUNCTION_DEF_KEY).cache == "never"
    a = obj().deploy_plan("dry-run", FGA, PG, {})
    b = obj().deploy_plan("dry-run", FGA, PG, {})
    assert plan.env_of(a)[kc.RUN_ID_ENV] != plan.env_of(b)[kc.RUN_ID_ENV]


def test_package_returns_both_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine().install(monkeypatch)
    engine.respond("-m", lambda argv, ctr: Answer(
        stdout=f"index.unikraft.io/team/{argv[-2]}@sha256:{'9' * 64}\n"))
    out = anyio.run(lambda: obj(openfga_rootfs=dag.directory(),
                                postgres_rootfs=dag.directory()).package("v1.22.1"))
    assert out.splitlines() == [f"index.unikraft.io/team/openfga@sha256:{'9' * 64}",
                                f"index.unikraft.io/team/openfga-postgres@sha256:{'9' * 64}"]


def test_package_needs_both_rootfs_directories() -> None:
    with pytest.raises(InputError, match="no rootfs"):
        anyio.run(lambda: obj(openfga_rootfs=dag.directory()).package("v1"))


def test_package_backup_packs_kraftfiles_backup_as_name_backup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = FakeEngine().install(monkeypatch)
    engine.respond("-m", lambda argv, ctr: Answer(
        stdout=f"index.unikraft.io/team/{argv[-2]}@sha256:{'8' * 64}\n"))
    rootfs = dag.directory().with_new_file("usr/bin/python3", "x")
    out = anyio.run(lambda: obj(backup_rootfs=rootfs).package_backup("v1.22.1"))
    assert out == f"index.unikraft.io/team/openfga-backup@sha256:{'8' * 64}\n"
    (ctr,) = engine.containers("-m")
    kraftfile = next(s for s in plan.chain(ctr) if s.name == "withDirectory"
                     and s.args["path"].endswith("/backup"))  # fmt: skip
    assert kraftfile.args["include"] == ["Kraftfile"]
    assert any(s.name == "withDirectory" and s.args["source"] is rootfs for s in plan.chain(ctr))
    with pytest.raises(InputError, match="no rootfs"):
        anyio.run(lambda: obj().package_backup("v1"))
    with pytest.raises(InputError, match="kind must be one of openfga, postgres, backup"):
        obj().package_plan("redis", dag.directory(), "v1")


def test_the_backup_kraftfile_matches_the_backup_image() -> None:
    """A rootfs carries no image ENV: the Kraftfile restates the image's, and must agree."""
    kraftfile = yaml.safe_load((REPO / "kraftfiles" / "backup" / "Kraftfile").read_text())
    assert kraftfile["runtime"].startswith("base-compat") and kraftfile["rootfs"] == "./rootfs"
    assert kraftfile["cmd"] == bk.BACKUP_ARGS
    env = kraftfile["env"]
    assert env["PATH"].split(":")[0] == f"{bk.VENV}/bin"
    assert env["PYTHONPATH"] == bk.PACKAGE_DIR and env["BACKUP_WORKDIR"] == bk.WORKDIR
