"""Plan tests for the Kubernetes wiring (rung 2: the real dagger-io SDK, no engine)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import dagger
import pytest
from dagger import dag
from dagger.mod._module import FUNCTION_DEF_KEY
from openfga_release import kubernetes as kw
from openfga_release.recipes import kubedeploy as kd
from openfga_release.recipes import kubernetes as k8s
from openfga_release.recipes import refs
from openfga_release.recipes.errors import InputError

from tests.support import plan
from tests.support.engine import Answer, FakeEngine

REPO = Path(__file__).resolve().parents[2]
DIGEST = "registry.example.com/openfga@sha256:" + "c" * 64
PASSWORD_NAMES = ("migrator", "app", "readonly", "keys")


def secrets() -> dict[str, dagger.Secret]:
    return {n: dag.secret(f"env://TEST_K8S_{n.upper()}") for n in PASSWORD_NAMES}


def obj(**kw: Any) -> kw.Kubernetes:
    kw.setdefault("kubeconfig", dag.secret("file:///tmp/kubeconfig"))
    kw.setdefault("postgres_config", dag.directory())
    return kw_module(**kw)


kw_module = kw.Kubernetes


def planned(command: str = "deploy", **kw: Any) -> tuple[dagger.Container, dict[str, Any]]:
    s = secrets()
    k = obj(**kw)
    files = kw_secret_files(s)
    return k.deploy_plan(command, DIGEST, files), {"secrets": s, "obj": k}


def kw_secret_files(s: dict[str, dagger.Secret]) -> dict[str, dagger.Secret | None]:
    tls = dag.secret("env://TEST_K8S_TLS_KEY")
    return kw._secret_files(s["migrator"], s["app"], s["readonly"], s["keys"],
                            dag.secret("env://TEST_K8S_TLS_CRT"), tls, None, None, None)


def test_deploy_runs_the_recipe_with_pinned_images() -> None:
    ctr, _ = planned()
    images = plan.images(ctr)
    assert refs.PYTHON_IMAGE in images and kd.KUBECTL_IMAGE in images
    assert kd.KUBECTL_IMAGE.startswith("registry.k8s.io/kubectl:v")
    assert re.fullmatch(r"registry\.k8s\.io/kubectl:v\d+\.\d+\.\d+", kd.KUBECTL_IMAGE)
    argv = plan.execs(ctr)[-1]
    assert argv[:4] == ["python", "-m", "openfga_release.recipes.kubedeploy", "deploy"]
    assert argv[argv.index("--openfga-image") + 1] == DIGEST
    pip = next(e for e in plan.execs(ctr) if e[:2] == ["pip", "install"])
    assert all("==" in p for p in pip if not p.startswith("-") and p not in ("pip", "install"))


def test_the_kubeconfig_and_passwords_arrive_only_as_secret_files() -> None:
    k = obj()
    s = secrets()
    ctr = k.deploy_plan("deploy", DIGEST, kw_secret_files(s))
    mounted = {step.args["path"]: step.args["source"]
               for step in plan.calls(ctr, "withMountedSecret")}
    assert mounted[f"{kw.SECRETS_DIR}/kubeconfig"] is k.kubeconfig
    for name, key in (("migrator-password", "migrator"), ("app-password", "app"),
                      ("readonly-password", "readonly"), ("preshared-keys", "keys")):
        assert mounted[f"{kw.SECRETS_DIR}/{name}"] is s[key]
    assert f"{kw.SECRETS_DIR}/ca.crt" not in mounted  # not given: not mounted
    assert not plan.calls(ctr, "withSecretVariable")
    env = plan.env_of(ctr)
    assert set(env) == {"PYTHONPATH", kw.RUN_ID_ENV}
    for text in plan.plain_strings(ctr):
        assert "TEST_K8S" not in text or text.startswith("env://")


def test_every_deploy_is_a_new_run_and_never_cached() -> None:
    a, _ = planned()
    b, _ = planned()
    assert plan.env_of(a)[kw.RUN_ID_ENV] != plan.env_of(b)[kw.RUN_ID_ENV]
    for name in ("deploy", "dry_run"):
        meta = getattr(kw.Kubernetes.__dict__[name], FUNCTION_DEF_KEY)
        assert meta.cache == "never"
    for name in ("manifests", "role"):
        meta = getattr(kw.Kubernetes.__dict__[name], FUNCTION_DEF_KEY)
        assert meta.cache is None  # pure: Dagger's default cache


def test_dry_run_plans_the_diff_command_without_smoke() -> None:
    ctr, _ = planned("dry-run")
    argv = plan.execs(ctr)[-1]
    assert argv[3] == "dry-run" and "--smoke-script" not in argv
    deploy, _ = planned("deploy")
    assert "--smoke-script" in plan.execs(deploy)[-1]


def test_bad_arguments_fail_before_any_container() -> None:
    with pytest.raises(InputError, match="no digest"):
        obj().deploy_plan("deploy", "openfga/openfga:v1.22.1", kw_secret_files(secrets()))
    with pytest.raises(InputError, match="flavor"):
        obj(flavor="helm").deploy_plan("deploy", DIGEST, kw_secret_files(secrets()))
    with pytest.raises(InputError, match="kubeconfig"):
        obj(kubeconfig=None).deploy_plan("deploy", DIGEST, kw_secret_files(secrets()))


def test_deploy_returns_the_recipe_report(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine().install(monkeypatch)
    engine.respond("-m", lambda argv, ctr: Answer(stdout="secrets: applied 5\n"))
    s = secrets()
    out = anyio.run(lambda: obj().deploy(DIGEST, s["migrator"], s["app"], s["readonly"],
                                         s["keys"], dag.secret("env://C"), dag.secret("env://K")))
    assert out == "secrets: applied 5\n"


def test_manifests_render_images_postgres_in_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    async def contents(file: dagger.File) -> str:
        path = plan.chain(file)[-1].args["path"]
        return (REPO / "images" / "postgres" / path).read_text()

    monkeypatch.setattr(dagger.File, "contents", contents)
    out = anyio.run(lambda: obj(flavor="cnpg").manifests(DIGEST))
    written = {s.args["path"]: s.args["contents"] for s in plan.calls(out, "withNewFile")}
    src = k8s.PostgresSources.read(REPO / "images" / "postgres")
    spec = k8s.Spec(openfga_image=DIGEST, flavor="cnpg")
    assert written == k8s.render_files(spec, src)
    assert "postgres-cnpg/kustomization.yaml" in written


def test_role_is_the_recipes_minimal_role() -> None:
    text = obj(namespace="prod").role()
    assert "namespace: prod" in text and "delete" not in text


def test_custom_names_reach_the_recipe() -> None:
    k = obj(database="authz", app_role="authz_app")
    argv = plan.execs(k.deploy_plan("deploy", DIGEST, kw_secret_files(secrets())))[-1]
    assert argv[argv.index("--database") + 1] == "authz"
    assert argv[argv.index("--app-role") + 1] == "authz_app"
    with pytest.raises(InputError, match="reserved"):
        obj(app_role="postgres").deploy_plan("deploy", DIGEST, kw_secret_files(secrets()))


BACKUP_IMAGE = "registry.example.com/openfga-backup@sha256:" + "d" * 64


def test_a_backup_image_schedules_the_cronjob_in_both_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Dagger path hands --backup-image to the deploy command; the rendered StatefulSet
    base (the same Spec the command builds) carries recipes/backup.py's CronJob."""
    k = obj(backup_image=BACKUP_IMAGE)
    argv = plan.execs(k.deploy_plan("deploy", DIGEST, kw_secret_files(secrets())))[-1]
    assert argv[argv.index("--backup-image") + 1] == BACKUP_IMAGE

    async def contents(file: dagger.File) -> str:
        return (REPO / "images" / "postgres" / plan.chain(file)[-1].args["path"]).read_text()

    monkeypatch.setattr(dagger.File, "contents", contents)
    written = plan.calls(anyio.run(lambda: k.manifests(DIGEST)), "withNewFile")
    cronjobs = [s for s in written if "kind: CronJob" in s.args["contents"]]
    assert len(cronjobs) == 1 and BACKUP_IMAGE in cronjobs[0].args["contents"]
    plain = plan.calls(anyio.run(lambda: obj().manifests(DIGEST)), "withNewFile")
    assert not [s for s in plain if "kind: CronJob" in s.args["contents"]]
    assert kd.with_backups(k8s.Spec(openfga_image=DIGEST, flavor="cnpg"), BACKUP_IMAGE) == (
        k8s.Spec(openfga_image=DIGEST, flavor="cnpg")
    )  # CloudNativePG backs up with its own ScheduledBackup


def test_the_deploy_role_may_apply_cronjobs_but_delete_nothing() -> None:
    rules = kd.deploy_role("prod", "statefulset")["rules"]
    cron = [r for r in rules if "cronjobs" in r["resources"]]
    assert cron == [{"apiGroups": ["batch"], "resources": ["cronjobs"],
                     "verbs": ["get", "create", "patch"]}]  # fmt: skip
    assert not [r for r in rules if "delete" in r["verbs"]]
