"""Dagger wiring for Kubernetes: the manifests as a Directory, the deploy and its dry run.

The knowledge lives in :mod:`.recipes.kubernetes` (the objects) and
:mod:`.recipes.kubedeploy` (the ordered apply, the waits, the failure handling, the
minimal Role). This file only:

- renders in the module runtime (``manifests``: pure, no container, cached by Dagger like any
  function of its inputs), reading ``images/postgres`` from the ``postgres_config`` Directory;
- builds the deploy container: the pinned Python image, ``kubectl`` copied from the pinned
  official ``registry.k8s.io/kubectl`` image, pinned ``pyyaml``/``httpx``, the recipes package
  and ``images/postgres``; the kubeconfig and every password/key mounted as secret files
  under ``/run/secrets`` (never env, argv or a layer); one
  ``python -m openfga_release.recipes.kubedeploy deploy|dry-run``, the command the tests run
  against a real control plane.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import dagger
from dagger import Doc, dag, function

from .openfga import standalone
from .recipes import kubedeploy as kd
from .recipes import kubernetes as k8s
from .recipes import postgres as pg
from .recipes import refs
from .recipes.kubedeploy import with_backups
from .recipes.releases import DEFAULT_VERSION
from .registry import recipes_package
from .sdk import object_type

PKG_ROOT = "/opt/openfga-release"
POSTGRES_DIR = "/in/postgres"
SECRETS_DIR = "/run/secrets"
SMOKE_PATH = "/opt/openfga-release/smoke.py"
RUN_ID_ENV = "OPENFGA_RELEASE_RUN_ID"  # a fresh value: a deploy is never replayed from cache
# The recipes' third-party imports, pinned like the root pyproject's dev list.
PIP_PACKAGES = ("pyyaml==6.0.3", *refs.HTTPX)

# A deploy must run every time: never answered from Dagger's function cache.
side_effect = function(cache="never")  # type: ignore[call-overload]  # SDK overloads omit cache


async def read_sources(config: dagger.Directory) -> k8s.PostgresSources:
    """``images/postgres`` as the renderer reads it."""
    files = {name: await config.file(name).contents() for name in pg.CONFIG_FILES}
    init = {name: await config.file(f"initdb.d/{name}").contents() for name in pg.INIT_FILES}
    script = await config.file(pg.START_SCRIPT).contents()
    return k8s.PostgresSources(config=files, init=init, start_script=script)


def manifests_directory(files: dict[str, str]) -> dagger.Directory:
    out = dag.directory()
    for rel, text in sorted(files.items()):
        out = out.with_new_file(rel, text)
    return out


def deploy_container(
    *,
    command: str,
    config: dagger.Directory,
    kubeconfig: dagger.Secret,
    secrets: dict[str, dagger.Secret],
    cli_args: list[str],
    python_image: str = refs.PYTHON_IMAGE,
    kubectl_image: str = kd.KUBECTL_IMAGE,
) -> dagger.Container:
    """The container that runs ``kubedeploy`` (``command``: deploy or dry-run)."""
    kubectl = dag.container().from_(kubectl_image).file(kd.KUBECTL_IN_IMAGE)
    ctr = (
        dag.container()
        .from_(python_image)
        .with_exec(["pip", "install", "--no-cache-dir", "--disable-pip-version-check",
                    *PIP_PACKAGES])
        .with_file(kd.KUBECTL_PATH, kubectl, permissions=0o755)
        .with_directory(PKG_ROOT, recipes_package())
        .with_new_file(SMOKE_PATH, standalone("smoke.py"), permissions=0o644)
        .with_directory(POSTGRES_DIR, config)
        .with_env_variable("PYTHONPATH", PKG_ROOT)
        .with_mounted_secret(f"{SECRETS_DIR}/kubeconfig", kubeconfig, mode=0o400)
    )
    for name, secret in sorted(secrets.items()):
        ctr = ctr.with_mounted_secret(f"{SECRETS_DIR}/{name}", secret, mode=0o400)
    return ctr.with_env_variable(RUN_ID_ENV, uuid.uuid4().hex).with_exec([
        "python", "-m", "openfga_release.recipes.kubedeploy", command,
        "--kubeconfig", f"{SECRETS_DIR}/kubeconfig", "--kubectl", kd.KUBECTL_PATH,
        "--secrets-dir", SECRETS_DIR, "--postgres-dir", POSTGRES_DIR, *cli_args,
    ])


# The object's knobs, declared once: the main object's `kubernetes` getter takes the same.
Kubeconfig = Annotated[dagger.Secret | None, Doc("kubeconfig (file://$HOME/.kube/config)")]
Namespace = Annotated[str, Doc("namespace (must exist; never created)")]
Flavor = Annotated[str, Doc("statefulset or cnpg (CloudNativePG)")]
PostgresMemory = Annotated[str, Doc("PostgreSQL memory limit; sizes memory.conf")]
PostgresStorage = Annotated[str, Doc("data volume size")]
StorageClass = Annotated[str, Doc("StorageClass ('' = the default)")]
OpenfgaReplicas = Annotated[int, Doc("OpenFGA replicas (2 or more)")]
# deploy and dry-run take the same secrets.
OpenfgaImage = Annotated[str, Doc("OpenFGA image by digest")]
MigratorPassword = Annotated[dagger.Secret, Doc("the migrator role's password")]
AppPassword = Annotated[dagger.Secret, Doc("the app role's password")]
ReadonlyPassword = Annotated[dagger.Secret, Doc("the read-only role's password")]
PresharedKeys = Annotated[dagger.Secret, Doc("OpenFGA preshared keys, comma-separated")]
TlsCert = Annotated[dagger.Secret | None, Doc("PostgreSQL server certificate")]
TlsKey = Annotated[dagger.Secret | None, Doc("its private key")]
CaCert = Annotated[dagger.Secret | None, Doc("the CA that signed it")]
S3Secret = Annotated[dagger.Secret | None, Doc("object-store credential for CNPG backups")]
BackupImage = Annotated[str, Doc("backup image by digest: a backup CronJob (StatefulSet flavor)")]


@object_type
class Kubernetes:
    """OpenFGA and PostgreSQL on a Kubernetes cluster: manifests, deploy, dry run."""

    kubeconfig: Kubeconfig = None
    namespace: Namespace = k8s.DEFAULT_NAMESPACE
    flavor: Flavor = "statefulset"
    postgres_config: Annotated[dagger.Directory | None, Doc("images/postgres")] = None
    openfga_version: Annotated[str, Doc("OpenFGA release (names the Job)")] = DEFAULT_VERSION
    postgres_image: Annotated[str, Doc("pinned postgres image")] = pg.POSTGRES_IMAGE
    postgres_memory: PostgresMemory = "1Gi"
    postgres_storage: PostgresStorage = "10Gi"
    storage_class: StorageClass = ""
    openfga_replicas: OpenfgaReplicas = 2
    database: Annotated[str, Doc("the OpenFGA database")] = pg.DEFAULT_DATABASE
    owner_role: Annotated[str, Doc("NOLOGIN owner role")] = pg.DEFAULT_ROLES["owner"]
    migrator_role: Annotated[str, Doc("migrate's role")] = pg.DEFAULT_ROLES["migrator"]
    app_role: Annotated[str, Doc("the server's role")] = pg.DEFAULT_ROLES["app"]
    readonly_role: Annotated[str, Doc("read-only role")] = pg.DEFAULT_ROLES["readonly"]
    backup_image: BackupImage = ""

    def _names(self) -> pg.Names:
        return pg.Names(database=self.database, owner=self.owner_role,
                        migrator=self.migrator_role, app=self.app_role,
                        readonly=self.readonly_role)

    def _spec(self, openfga_image: str) -> k8s.Spec:
        return with_backups(self._base_spec(openfga_image), self.backup_image)

    def _base_spec(self, openfga_image: str) -> k8s.Spec:
        return k8s.Spec(
            openfga_image=openfga_image, postgres_image=self.postgres_image,
            namespace=self.namespace, flavor=self.flavor, openfga_version=self.openfga_version,
            names=self._names(),
            sizes=k8s.Sizes(postgres_memory=self.postgres_memory,
                            postgres_storage=self.postgres_storage,
                            storage_class=self.storage_class,
                            openfga_replicas=self.openfga_replicas),
        )  # fmt: skip

    def _config(self) -> dagger.Directory:
        if self.postgres_config is None:
            raise k8s.KubernetesInputError(
                "no PostgreSQL config: pass --postgres-config images/postgres")
        return self.postgres_config

    def _cli_args(self, openfga_image: str) -> list[str]:
        spec = self._spec(openfga_image)  # bad arguments fail here, before any container
        return ["--openfga-image", spec.openfga_image, "--postgres-image", spec.postgres_image,
                "--namespace", spec.namespace, "--flavor", spec.flavor,
                "--openfga-version", spec.openfga_version,
                "--postgres-memory", spec.sizes.postgres_memory,
                "--postgres-storage", spec.sizes.postgres_storage,
                "--storage-class", spec.sizes.storage_class,
                "--openfga-replicas", str(spec.sizes.openfga_replicas),
                "--database", spec.names.database, "--owner-role", spec.names.owner,
                "--migrator-role", spec.names.migrator, "--app-role", spec.names.app,
                "--readonly-role", spec.names.readonly,
                "--backup-image", self.backup_image]  # fmt: skip

    def _kubeconfig(self) -> dagger.Secret:
        if self.kubeconfig is None:
            raise k8s.KubernetesInputError(
                "no kubeconfig: pass --kubeconfig file://path/to/kubeconfig (a Secret)")
        return self.kubeconfig

    @function
    async def manifests(
        self,
        openfga_image: Annotated[str, Doc("OpenFGA image by digest (publish returns it)")],
    ) -> dagger.Directory:
        """The kustomize bases for this flavor and openfga, rendered for the given image."""
        spec = self._spec(openfga_image)
        src = await read_sources(self._config())
        return manifests_directory(k8s.render_files(spec, src))

    @function
    def role(self) -> str:
        """The minimal Role the deploy's kubeconfig user needs in the namespace (YAML)."""
        return kd.to_stream([kd.deploy_role(self.namespace, self.flavor)])

    def deploy_plan(
        self,
        command: str,
        openfga_image: str,
        secrets: dict[str, dagger.Secret | None],
    ) -> dagger.Container:
        """The deploy (or dry-run) container, planned; nothing runs until it is awaited."""
        cli_args = self._cli_args(openfga_image)
        given = {name: s for name, s in secrets.items() if s is not None}
        if command == "deploy" and "preshared-keys" in given:
            cli_args += ["--smoke-script", SMOKE_PATH]
        return deploy_container(command=command, config=self._config(),
                                kubeconfig=self._kubeconfig(), secrets=given, cli_args=cli_args)

    @side_effect
    async def deploy(
        self,
        openfga_image: OpenfgaImage,
        migrator_password: MigratorPassword,
        app_password: AppPassword,
        readonly_password: ReadonlyPassword,
        preshared_keys: PresharedKeys,
        tls_cert: TlsCert = None,
        tls_key: TlsKey = None,
        ca_cert: CaCert = None,
        s3_access_key_id: S3Secret = None,
        s3_secret_access_key: S3Secret = None,
    ) -> str:
        """Secrets -> PostgreSQL (ready) -> migration Job (Complete) -> Deployment (rolled out,
        rolled back on a progress deadline) -> smoke. Never deletes anything."""
        ctr = self.deploy_plan("deploy", openfga_image, _secret_files(
            migrator_password, app_password, readonly_password, preshared_keys, tls_cert,
            tls_key, ca_cert, s3_access_key_id, s3_secret_access_key))
        return await ctr.stdout()

    @side_effect
    async def dry_run(
        self,
        openfga_image: OpenfgaImage,
        migrator_password: MigratorPassword,
        app_password: AppPassword,
        readonly_password: ReadonlyPassword,
        preshared_keys: PresharedKeys,
        tls_cert: TlsCert = None,
        tls_key: TlsKey = None,
        ca_cert: CaCert = None,
    ) -> str:
        """The server-side diff (dryRun=All) of a deploy; changes nothing (Secrets masked)."""
        ctr = self.deploy_plan("dry-run", openfga_image, _secret_files(
            migrator_password, app_password, readonly_password, preshared_keys, tls_cert,
            tls_key, ca_cert, None, None))
        return await ctr.stdout()


def _secret_files(
    migrator: dagger.Secret, app: dagger.Secret, readonly: dagger.Secret,
    keys: dagger.Secret, tls_cert: dagger.Secret | None, tls_key: dagger.Secret | None,
    ca_cert: dagger.Secret | None, s3_id: dagger.Secret | None, s3_key: dagger.Secret | None,
) -> dict[str, dagger.Secret | None]:
    """File names :meth:`recipes.kubedeploy.SecretValues.from_dir` reads."""
    return {"migrator-password": migrator, "app-password": app, "readonly-password": readonly,
            "preshared-keys": keys, "tls.crt": tls_cert, "tls.key": tls_key, "ca.crt": ca_cert,
            "s3-access-key-id": s3_id, "s3-secret-access-key": s3_key}
