"""The deploy recipe's pure parts: Secrets it writes, kubectl errors it explains, the states
it waits for. The deploy itself runs against a real control plane in tests/real/test_kubernetes.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from openfga_release.recipes import kubedeploy as kd
from openfga_release.recipes import kubernetes as k8s
from openfga_release.recipes.errors import InputError

DIGEST = "registry.example.com/openfga@sha256:" + "b" * 64
VALUES = kd.SecretValues(
    migrator_password="Mig:@/#%-2b7c9d1e4f",
    app_password="App-5e3f1a9c7b2d4",
    readonly_password="Ro-8c6a4e2f0d9b7",
    preshared_keys=("psk-Zq9xW3vR7tY5uI1oP4aS", "psk-second-0123456789"),
    tls_crt="CERT", tls_key="KEY-BODY-SECRET-1",
)


def secrets(flavor: str = "statefulset") -> dict[str, dict[str, str]]:
    spec = k8s.Spec(openfga_image=DIGEST, namespace="prod", flavor=flavor)
    return {s["metadata"]["name"]: kd.secret_data(s) for s in kd.secret_objects(spec, VALUES)}


def test_datastore_uris_are_encoded_tls_and_per_role() -> None:
    out = secrets()
    app = urlsplit(out[k8s.DATASTORE_SECRET]["uri"])
    mig = urlsplit(out[k8s.MIGRATOR_DATASTORE_SECRET]["uri"])
    assert app.hostname == "postgres.prod.svc" and app.username == "openfga_app"
    assert mig.username == "openfga_migrator"
    assert unquote(mig.password or "") == VALUES.migrator_password
    assert "sslmode=require" in app.query
    assert out[k8s.PRESHARED_KEYS_SECRET]["keys"] == ",".join(VALUES.preshared_keys)
    assert out[k8s.POSTGRES_ROLES_SECRET]["app-password"] == VALUES.app_password


def test_cnpg_uris_use_the_pooler_for_the_app_and_the_primary_for_migrations() -> None:
    out = secrets("cnpg")
    assert urlsplit(out[k8s.DATASTORE_SECRET]["uri"]).hostname == "postgres-pooler-rw.prod.svc"
    assert urlsplit(out[k8s.MIGRATOR_DATASTORE_SECRET]["uri"]).hostname == "postgres-rw.prod.svc"
    assert out[k8s.ROLE_SECRET["app"]] == {"username": "openfga_app",
                                           "password": VALUES.app_password}


def test_weak_or_shared_passwords_are_refused_by_name() -> None:
    spec = k8s.Spec(openfga_image=DIGEST)
    weak = kd.SecretValues(migrator_password="short", app_password="App-5e3f1a9c7b2d4",
                           readonly_password="Ro-8c6a4e2f0d9b7", preshared_keys=("k" * 20,),
                           tls_crt="c", tls_key="k")
    with pytest.raises(InputError, match="POSTGRES_MIGRATOR_PASSWORD") as err:
        kd.secret_objects(spec, weak)
    assert "short" not in str(err.value)
    no_tls = kd.SecretValues(**{**VALUES.__dict__, "tls_crt": "", "tls_key": ""})
    with pytest.raises(InputError, match="TLS"):
        kd.secret_objects(spec, no_tls)


def test_secret_values_read_from_files(tmp_path: Path) -> None:
    for name, value in {"migrator-password": VALUES.migrator_password,
                        "app-password": VALUES.app_password,
                        "readonly-password": VALUES.readonly_password,
                        "preshared-keys": "a" * 20 + ",\n" + "b" * 20 + "\n"}.items():
        (tmp_path / name).write_text(value + "\n")
    values = kd.SecretValues.from_dir(tmp_path)
    assert values.preshared_keys == ("a" * 20, "b" * 20)
    assert values.tls_key == ""
    assert "Mig" not in repr(values)


def test_forbidden_names_the_verb_resource_and_group() -> None:
    stderr = ('Error from server (Forbidden): jobs.batch "openfga-migrate-v1-22-1" is forbidden: '
              'User "system:serviceaccount:prod:deployer" cannot create resource "jobs" in API '
              'group "batch" in the namespace "prod"')
    msg = kd.explain_kubectl(stderr, "applying the migration Job", "prod")
    assert "may not create jobs.batch in namespace prod" in msg
    assert "add the verb 'create' on 'jobs'" in msg


def test_conflict_names_the_other_manager_and_never_forces() -> None:
    stderr = ('error: Apply failed with 1 conflict: conflict with "kubectl-create" using v1: '
              '.data.keys\nPlease review the fields above--they currently have other managers.')
    msg = kd.explain_kubectl(stderr, "applying the Secrets", "prod")
    assert "conflict (409)" in msg and "kubectl-create" in msg and "never forces" in msg


def test_missing_namespace_is_not_created_or_deleted() -> None:
    msg = kd.explain_kubectl('Error from server (NotFound): namespaces "prod" not found',
                             "applying the Secrets", "prod")
    assert "kubectl create namespace prod" in msg


def test_kubectl_output_is_redacted_and_secrets_never_in_argv() -> None:
    seen: list[list[str]] = []

    def runner(argv: list[str], stdin: str | None, timeout: float
               ) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 1, "", f"boom {VALUES.app_password} boom")

    kubectl = kd.Kubectl("kubectl", "/kc", "prod", VALUES.all(), runner)
    spec = k8s.Spec(openfga_image=DIGEST, namespace="prod")
    with pytest.raises(kd.DeployError) as err:
        kd.apply(kubectl, kd.secret_objects(spec, VALUES), "the Secrets")
    assert VALUES.app_password not in str(err.value) + err.value.detail
    for argv in seen:
        for value in VALUES.all():
            assert all(value not in a for a in argv)
    assert "--force-conflicts" not in seen[0] and "--server-side" in seen[0]
    assert f"--field-manager={k8s.FIELD_MANAGER}" in seen[0]


def test_states() -> None:
    dep = {"metadata": {"generation": 2}, "spec": {"replicas": 2},
           "status": {"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2,
                      "availableReplicas": 2}}
    assert kd.rollout_state(dep) == "Done"
    dep["status"]["replicas"] = 3  # an old pod still there
    assert kd.rollout_state(dep) == "Progressing"
    dep["status"]["conditions"] = [{"type": "Progressing", "status": "False",
                                    "reason": "ProgressDeadlineExceeded"}]
    assert kd.rollout_state(dep) == "Failed"
    assert kd.job_state({"status": {"conditions": [{"type": "Failed", "status": "True"}]}}) == (
        "Failed")
    assert kd.job_state({"status": {}}) == "Running"


def test_the_pipeline_kubectl_is_the_pinned_official_image() -> None:
    assert kd.KUBECTL_IMAGE.startswith("registry.k8s.io/kubectl:v1.35.")


def test_the_deploy_has_no_way_to_delete() -> None:
    source = Path(kd.__file__).read_text()
    for argv_word in ('"delete"', '"--prune"', '"--force-conflicts"', '"--force"'):
        assert argv_word not in source
