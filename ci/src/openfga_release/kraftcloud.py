"""Dagger wiring for KraftCloud (Unikraft Cloud): package, deploy, dry run, status, backup.

The knowledge lives in :mod:`.recipes.kraftcloud` (plan, crash diagnostics,
retries, the SDK calls, the deploy steps, the packaging argv); this file only
builds containers:

- ``package``: the pinned Python image; the official ``kraft`` CLI installed at
  its pinned version only if its SHA-256 matches; per image, the Kraftfile's
  directory with the rootfs DIRECTORY given (``openfga-image ... rootfs`` and
  ``postgres ... rootfs``), ``kraft pkg`` to the local OCI store, then ``kraft
  pkg push`` (retried), then the digest read back from the registry;
- ``deploy`` / ``dry-run`` / ``status``: the pinned Python image with the
  pinned ``unikraft-cloud`` SDK and the plain recipes package, running
  ``python -m openfga_release.recipes.kraftcloud <command>``, the command the
  tests run against the contract fake;
- ``backup``: the same container running ``... kraftcloud backup``: the one-shot
  ``<name>-backup`` instance on the private network (see recipes/kraftcloud/deploy.py).

The token and every password arrive only as ``dagger.Secret`` through
``with_secret_variable``; nothing secret is in argv, plain env or a layer.
Side effects are never cached, and every run carries a fresh run id.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import dagger
from dagger import Doc, dag, function

from .openfga import standalone
from .recipes import refs
from .recipes.kraftcloud import package as kpkg
from .recipes.kraftcloud.plan import BACKUP_SECRET_ENV, BackupJob, Spec
from .registry import recipes_package
from .sdk import object_type

PKG_ROOT = "/opt/openfga-release"
WORK = "/work"
RUN_ID_ENV = "OPENFGA_RELEASE_RUN_ID"
TOKEN_ENV = "UKC_TOKEN"  # noqa: S105 (a variable name)
# The deploy's third-party imports, pinned like the root pyproject's dev list.
PIP_PACKAGES = ("unikraft-cloud==0.3.0", *refs.HTTPX, "pydantic==2.14.3")
SECRET_ENV = {
    "migrator": "POSTGRES_MIGRATOR_PASSWORD",
    "app": "POSTGRES_APP_PASSWORD",
    "readonly": "POSTGRES_READONLY_PASSWORD",
    "keys": "FGA_PRESHARED_KEYS",
}
PUSH_RETRY = 'for i in 1 2 3; do "$@" && exit 0; echo "push failed, retrying" >&2; sleep 10; '\
    'done; exit 1'

side_effect = function(cache="never")  # type: ignore[call-overload]  # SDK overloads omit cache


def program_package() -> dagger.Directory:
    """The plain recipes plus the standalone smoke test, importable from PYTHONPATH."""
    return (recipes_package()
            .with_new_file("openfga_release/standalone/__init__.py", "")
            .with_new_file("openfga_release/standalone/smoke.py", standalone("smoke.py")))


# What `package` can pack, and the suffix of its image name (kraftfiles/<kind>).
PACKAGES = {"openfga": "", "postgres": "-postgres", "backup": "-backup"}

# The object's knobs, declared once: the main object's `kraftcloud` getter takes the same.
Token = Annotated[dagger.Secret | None, Doc("KraftCloud token (env://UKC_TOKEN)")]
Metro = Annotated[str, Doc("metro (fra, dal, sin, ...) or an API URL")]
User = Annotated[str, Doc("registry namespace: index.unikraft.io/<user>/...")]
Name = Annotated[str, Doc("prefix of every resource (instances, volume, service)")]
KraftSha256 = Annotated[str, Doc("SHA-256 of the pinned kraft release archive")]
Domain = Annotated[str, Doc("custom domain ('' = the platform's name)")]
ScaleToZero = Annotated[str, Doc("off, on or idle")]
OpenfgaMemoryMb = Annotated[int, Doc("OpenFGA instance memory")]
PostgresMemoryMb = Annotated[int, Doc("PostgreSQL instance memory")]
VolumeSizeMb = Annotated[int, Doc("PostgreSQL volume size (never deleted)")]


@object_type
class KraftCloud:
    """OpenFGA + PostgreSQL on Unikraft Cloud: package both unikernels, deploy privately,
    upgrade without downtime, explain every crash."""

    token: Token = None
    metro: Metro = "fra"
    user: User = ""
    name: Name = "openfga"
    kraftfiles: Annotated[dagger.Directory | None, Doc("the repo's kraftfiles/")] = None
    openfga_rootfs: Annotated[dagger.Directory | None, Doc("openfga-image's rootfs (amd64)")] = (
        None)
    postgres_rootfs: Annotated[dagger.Directory | None, Doc("postgres' Unikraft rootfs")] = None
    backup_rootfs: Annotated[dagger.Directory | None, Doc("the backup image's rootfs")] = None
    kraft_sha256: KraftSha256 = kpkg.KRAFT_SHA256
    domain: Domain = ""
    scale_to_zero: ScaleToZero = "idle"
    openfga_memory_mb: OpenfgaMemoryMb = 512
    postgres_memory_mb: PostgresMemoryMb = 1024
    volume_size_mb: VolumeSizeMb = 1024

    # ------------------------------------------------------------ packaging
    def _token(self) -> dagger.Secret:
        if self.token is None:
            raise kpkg.PackageInputError("no token: pass --token env://UKC_TOKEN (a Secret)")
        return self.token

    def package_plan(self, kind: str, rootfs: dagger.Directory, tag: str) -> dagger.Container:
        """The container that packs ``kind`` (openfga or postgres) and prints its digest."""
        if kind not in PACKAGES:
            raise kpkg.PackageInputError(f"kind must be one of {', '.join(PACKAGES)}")
        if self.kraftfiles is None:
            raise kpkg.PackageInputError("no Kraftfiles: pass --kraftfiles kraftfiles")
        target = kpkg.Target(self.user, self.name + PACKAGES[kind], tag)
        install = kpkg.install_argv(self.kraft_sha256)  # refuses an unpinned CLI here
        src = f"{WORK}/{kind}"
        ctr = (
            dag.container().from_(refs.PYTHON_IMAGE)
            .with_exec(install)
            .with_directory(src, self.kraftfiles.directory(kind), include=["Kraftfile"])
            .with_directory(f"{src}/rootfs", rootfs)
            .with_directory(PKG_ROOT, program_package())
            .with_env_variable("PYTHONPATH", PKG_ROOT)
            .with_env_variable("KRAFTKIT_NO_CHECK_UPDATES", "true")
            .with_workdir(src)
        )
        for env in kpkg.TOKEN_ENVS:
            ctr = ctr.with_secret_variable(env, self._token())
        return (
            ctr.with_env_variable(RUN_ID_ENV, uuid.uuid4().hex)
            .with_exec(kpkg.pkg_argv(target))
            .with_exec(["sh", "-c", PUSH_RETRY, "push", *kpkg.push_argv(target)])
            .with_exec(["python", "-m", "openfga_release.recipes.kraftcloud.package", "digest",
                        target.user, target.name, target.tag])
        )

    @side_effect
    async def package(
        self,
        tag: Annotated[str, Doc("image tag, e.g. the OpenFGA version")],
        openfga_rootfs: Annotated[dagger.Directory | None,
                                  Doc("overrides the getter's openfga rootfs")] = None,
        postgres_rootfs: Annotated[dagger.Directory | None,
                                   Doc("overrides the getter's postgres rootfs")] = None,
    ) -> str:
        """Pack both rootfs directories, copy them to index.unikraft.io; returns the two
        digest references (openfga first), one per line."""
        fga_dir = openfga_rootfs or self.openfga_rootfs
        pg_dir = postgres_rootfs or self.postgres_rootfs
        if fga_dir is None or pg_dir is None:
            raise kpkg.PackageInputError(
                "no rootfs to pack: pass --openfga-rootfs and --postgres-rootfs (directories)")
        fga = self.package_plan("openfga", fga_dir, tag)
        pg = self.package_plan("postgres", pg_dir, tag)
        return (await fga.stdout()).strip() + "\n" + (await pg.stdout()).strip() + "\n"

    @side_effect
    async def package_backup(
        self,
        tag: Annotated[str, Doc("image tag, e.g. the OpenFGA version")],
        backup_rootfs: Annotated[dagger.Directory | None,
                                 Doc("overrides the getter's backup rootfs")] = None,
    ) -> str:
        """Pack the one-shot backup runner (kraftfiles/backup) and copy it to
        index.unikraft.io; returns its digest reference, for `backup --backup-image`."""
        rootfs = backup_rootfs or self.backup_rootfs
        if rootfs is None:
            raise kpkg.PackageInputError("no rootfs to pack: pass --backup-rootfs (a directory)")
        return (await self.package_plan("backup", rootfs, tag).stdout()).strip() + "\n"

    # ------------------------------------------------------------ deploy
    def _cli_args(self, openfga_image: str, postgres_image: str) -> list[str]:
        spec = Spec(openfga_image=openfga_image, postgres_image=postgres_image, name=self.name,
                    domain=self.domain, scale_to_zero=self.scale_to_zero,
                    openfga_memory_mb=self.openfga_memory_mb,
                    postgres_memory_mb=self.postgres_memory_mb,
                    volume_size_mb=self.volume_size_mb)  # bad arguments fail here
        return ["--metro", self.metro, "--openfga-image", spec.openfga_image,
                "--postgres-image", spec.postgres_image, "--name", spec.name,
                "--domain", spec.domain, "--scale-to-zero", spec.scale_to_zero,
                "--openfga-memory-mb", str(spec.openfga_memory_mb),
                "--postgres-memory-mb", str(spec.postgres_memory_mb),
                "--volume-size-mb", str(spec.volume_size_mb)]

    def _program(self, command: str, cli_args: list[str], secrets: dict[str, dagger.Secret],
                 env_names: dict[str, str]) -> dagger.Container:
        ctr = (
            dag.container().from_(refs.PYTHON_IMAGE)
            .with_exec(["pip", "install", "--no-cache-dir", "--disable-pip-version-check",
                        *PIP_PACKAGES])
            .with_directory(PKG_ROOT, program_package())
            .with_env_variable("PYTHONPATH", PKG_ROOT)
            .with_secret_variable(TOKEN_ENV, self._token())
        )
        for key, secret in sorted(secrets.items()):
            ctr = ctr.with_secret_variable(env_names[key], secret)
        return ctr.with_env_variable(RUN_ID_ENV, uuid.uuid4().hex).with_exec(
            ["python", "-m", "openfga_release.recipes.kraftcloud", command, *cli_args])

    def deploy_plan(self, command: str, openfga_image: str, postgres_image: str,
                    secrets: dict[str, dagger.Secret]) -> dagger.Container:
        """The deploy/dry-run/status container, planned; nothing runs until awaited."""
        cli_args = self._cli_args(openfga_image, postgres_image)
        return self._program(command, cli_args, secrets, SECRET_ENV)

    def backup_plan(self, job: BackupJob, secrets: dict[str, dagger.Secret]
                    ) -> dagger.Container:
        """The backup container, planned: the job was checked (image by digest, endpoint)
        before any container; the secrets arrive only as secret variables."""
        return self._program("backup", ["--metro", self.metro, *job.cli_args()], secrets,
                             BACKUP_SECRET_ENV)

    @side_effect
    async def deploy(
        self,
        openfga_image: Annotated[str, Doc("OpenFGA image by digest (package returns it)")],
        postgres_image: Annotated[str, Doc("PostgreSQL image by digest")],
        migrator_password: Annotated[dagger.Secret, Doc("openfga_migrator's password")],
        app_password: Annotated[dagger.Secret, Doc("openfga_app's password")],
        readonly_password: Annotated[dagger.Secret, Doc("openfga_readonly's (first boot)")],
        preshared_keys: Annotated[dagger.Secret, Doc("OpenFGA preshared keys, comma-separated")],
    ) -> str:
        """Volume -> PostgreSQL (private) -> one-shot migrate -> OpenFGA behind the service
        group (canary first on upgrades) -> smoke. Returns the filtered report."""
        return await self.deploy_plan("deploy", openfga_image, postgres_image, {
            "migrator": migrator_password, "app": app_password,
            "readonly": readonly_password, "keys": preshared_keys}).stdout()

    @side_effect
    async def dry_run(
        self,
        openfga_image: Annotated[str, Doc("OpenFGA image by digest")],
        postgres_image: Annotated[str, Doc("PostgreSQL image by digest")],
    ) -> str:
        """Read the state and print what deploy would create, update or keep; changes nothing."""
        return await self.deploy_plan("dry-run", openfga_image, postgres_image, {}).stdout()

    @side_effect
    async def status(
        self,
        openfga_image: Annotated[str, Doc("OpenFGA image by digest")],
        postgres_image: Annotated[str, Doc("PostgreSQL image by digest")],
    ) -> str:
        """What runs now, with one sentence for every stopped instance (never its env)."""
        return await self.deploy_plan("status", openfga_image, postgres_image, {}).stdout()

    @side_effect
    async def backup(
        self,
        backup_image: Annotated[str, Doc("backup image by digest (…@sha256:<64 hex>)")],
        s3_endpoint: Annotated[str, Doc("S3-compatible endpoint, scheme://host[:port]")],
        s3_bucket: Annotated[str, Doc("bucket")],
        s3_access_key: Annotated[dagger.Secret, Doc("S3 access key id")],
        s3_secret_key: Annotated[dagger.Secret, Doc("S3 secret access key")],
        readonly_password: Annotated[dagger.Secret, Doc("openfga_readonly's password")],
        s3_prefix: Annotated[str, Doc("prefix inside the bucket")] = "",
        s3_region: Annotated[str, Doc("S3 region")] = "us-east-1",
        keep: Annotated[int, Doc("newest backups kept")] = 14,
    ) -> str:
        """One backup now: the one-shot <name>-backup instance on the private network dumps
        <name>-postgres.internal as the read-only role to the object store, stops and is
        removed. Returns the filtered report; fails with a sentence."""
        job = BackupJob(name=self.name, image=backup_image, endpoint=s3_endpoint,
                        bucket=s3_bucket, prefix=s3_prefix, region=s3_region, keep=keep)
        return await self.backup_plan(job, {
            "readonly": readonly_password, "s3_access_key": s3_access_key,
            "s3_secret_key": s3_secret_key}).stdout()
