"""Dagger wiring for backups: logical dumps to S3-compatible storage and verified restores.

The knowledge lives in :mod:`.recipes.backup` (what is dumped, how it is checked, named,
kept and restored; the schedules). This file only builds the container that runs
``python -m openfga_release.recipes.backup backup|restore|list|verify``, the command the
tests run against a real PostgreSQL, OpenFGA and S3 server:

- the pinned official ``postgres`` image (client tools of the server's major: 17 for
  :data:`~.recipes.postgres.POSTGRES_IMAGE`), Debian's ``python3`` with ``boto3`` pinned in
  a venv, and the plain recipes package; the same image a CronJob or a KraftCloud one-shot
  runs (:meth:`Backup.image`, publish it by digest);
- every credential (the database password, the S3 key pair) as a ``dagger.Secret`` in the
  environment the CLI reads: never argv, a plain variable, a layer or the output;
- a fresh run id in the environment, so a backup or restore is never answered from a cache.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import dagger
from dagger import Doc, dag, function

from .recipes import backup as bk
from .recipes import postgres as pg
from .registry import recipes_package
from .sdk import object_type

RUN_ID_ENV = "OPENFGA_RELEASE_RUN_ID"
S3_CA_PATH = "/etc/openfga-backup/s3-ca.crt"
PG_CA_PATH = "/etc/openfga-backup/pg-ca.crt"
CLI = ["python3", "-m", "openfga_release.recipes.backup"]

# A backup or restore must run every time: never answered from Dagger's function cache.
side_effect = function(cache="never")  # type: ignore[call-overload]  # SDK overloads omit cache


def backup_image(base: str = bk.BACKUP_BASE_IMAGE) -> dagger.Container:
    """The backup runner: pinned postgres (client tools), python3, pinned deps, the recipes."""
    pg.check_image_pinned(base)
    return (
        dag.container()
        .from_(base)
        .with_exec(["apt-get", "update", "-qq"])
        .with_exec(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                    "python3", "python3-venv"])
        .with_exec(["rm", "-rf", "/var/lib/apt/lists"])
        .with_exec(["python3", "-m", "venv", bk.VENV])
        .with_exec([f"{bk.VENV}/bin/pip", "install", "--no-cache-dir",
                    "--disable-pip-version-check", *bk.IMAGE_REQUIREMENTS])
        .with_directory(bk.PACKAGE_DIR, recipes_package())
        .with_exec(["install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0700",
                    bk.WORKDIR])
        .with_env_variable("PATH", f"{bk.VENV}/bin:${{PATH}}", expand=True)
        .with_env_variable("PYTHONPATH", bk.PACKAGE_DIR)
        .with_env_variable("PYTHONDONTWRITEBYTECODE", "1")
        .with_env_variable("BACKUP_WORKDIR", bk.WORKDIR)
        .with_user("postgres")
        .with_workdir(bk.WORKDIR)
        .with_entrypoint([])
        .with_default_args([*CLI, "--help"])
        .with_label("org.opencontainers.image.title", "openfga-backup")
        .with_label("org.opencontainers.image.description",
                    "pg_dump/pg_restore to S3-compatible storage for OpenFGA's PostgreSQL")
        .with_label("org.opencontainers.image.base.name", base)
    )


@object_type
class Backup:
    """Backups of OpenFGA's PostgreSQL to S3-compatible storage, and verified restores."""

    endpoint: Annotated[str, Doc("S3 endpoint, https://... (http:// only for private hosts)")]
    bucket: Annotated[str, Doc("bucket")]
    access_key_id: Annotated[dagger.Secret, Doc("S3 access key id")]
    secret_access_key: Annotated[dagger.Secret, Doc("S3 secret access key")]
    prefix: Annotated[str, Doc("key prefix, e.g. openfga/production")] = ""
    region: Annotated[str, Doc("S3 region")] = bk.DEFAULT_REGION
    s3_ca: Annotated[dagger.File | None, Doc("CA bundle of the S3 endpoint (private CA)")] = None
    base: Annotated[str, Doc("postgres image (the server's major), pinned")] = bk.BACKUP_BASE_IMAGE

    def _store(self) -> bk.ObjectStore:
        """The object-store settings, checked (bad ones fail before any container)."""
        return bk.ObjectStore(endpoint=self.endpoint, bucket=self.bucket, prefix=self.prefix,
                              region=self.region,
                              ca_file=S3_CA_PATH if self.s3_ca else None)  # fmt: skip

    @function
    def image(self) -> dagger.Container:
        """The backup runner image (publish it by digest for a CronJob or KraftCloud)."""
        return backup_image(self.base)

    def _store_args(self) -> list[str]:
        where = self._store()
        out = ["--endpoint", where.endpoint, "--bucket", where.bucket, "--region", where.region]
        if where.prefix:
            out += ["--prefix", where.prefix]
        if where.ca_file:
            out += ["--ca-file", where.ca_file]
        return out

    def runner(self, argv: list[str], password: dagger.Secret | None = None,
               pg_ca: dagger.File | None = None) -> dagger.Container:  # fmt: skip
        """The image with the secrets and CAs, running ``argv`` (a fresh run id: no cache)."""
        ctr = (
            backup_image(self.base)
            .with_secret_variable(bk.ACCESS_KEY_ENV, self.access_key_id)
            .with_secret_variable(bk.SECRET_KEY_ENV, self.secret_access_key)
        )
        if password is not None:
            ctr = ctr.with_secret_variable(bk.PASSWORD_ENV, password)
        if self.s3_ca is not None:
            ctr = ctr.with_file(S3_CA_PATH, self.s3_ca, permissions=0o444)
        if pg_ca is not None:
            ctr = ctr.with_file(PG_CA_PATH, pg_ca, permissions=0o444)
        return ctr.with_env_variable(RUN_ID_ENV, uuid.uuid4().hex).with_exec(
            [*CLI, *argv], expect=dagger.ReturnType.ANY
        )

    def _db_args(self, host: str, port: int, database: str, user: str, sslmode: str,
                 pg_ca: dagger.File | None) -> list[str]:  # fmt: skip
        db = bk.Database(host=host, port=port, database=database, user=user, sslmode=sslmode,
                         sslrootcert=PG_CA_PATH if pg_ca else None)  # fmt: skip
        out = ["--host", db.host, "--port", str(db.port), "--database", db.database,
               "--user", db.user, "--sslmode", db.dsn().sslmode]  # fmt: skip
        if db.sslrootcert:
            out += ["--sslrootcert", db.sslrootcert]
        return out

    def backup_plan(
        self, host: str, password: dagger.Secret, *, port: int = pg.PORT,
        database: str = pg.DEFAULT_DATABASE, user: str = pg.DEFAULT_ROLES["readonly"],
        sslmode: str = "", pg_ca: dagger.File | None = None, keep: int = bk.DEFAULT_KEEP,
        max_age_days: int = 0,
    ) -> dagger.Container:  # fmt: skip
        bk.check_retention(keep, max_age_days or None)
        argv = ["backup", *self._store_args(),
                *self._db_args(host, port, database, user, sslmode, pg_ca), "--keep", str(keep)]
        if max_age_days:
            argv += ["--max-age-days", str(max_age_days)]
        return self.runner(argv, password, pg_ca)

    def restore_plan(
        self, host: str, password: dagger.Secret, *, port: int = pg.PORT,
        database: str = pg.DEFAULT_DATABASE, user: str = pg.DEFAULT_ROLES["migrator"],
        owner: str = pg.DEFAULT_ROLES["owner"], backup: str = bk.LATEST, overwrite: str = "",
        source_database: str = "", sslmode: str = "", pg_ca: dagger.File | None = None,
    ) -> dagger.Container:  # fmt: skip
        pg.check_name("owner", owner)
        if overwrite and overwrite != database:
            raise bk.BackupInputError(
                f"--overwrite names {overwrite!r}, but the target database is {database!r}: "
                "name the database you mean to replace"
            )
        argv = ["restore", *self._store_args(),
                *self._db_args(host, port, database, user, sslmode, pg_ca),
                "--owner", owner, "--backup", backup]  # fmt: skip
        if overwrite:
            argv += ["--overwrite", overwrite]
        if source_database:
            argv += ["--source-database", pg.check_name("source database", source_database)]
        return self.runner(argv, password, pg_ca)

    @staticmethod
    async def _result(ctr: dagger.Container, what: str) -> str:
        code = await ctr.exit_code()
        if code != 0:
            err = (await ctr.stderr()).strip()
            sentence, _, detail = err.removeprefix("error: ").partition("\n")
            cls = bk.BackupInputError if code == 2 else bk.BackupError
            if cls is bk.BackupInputError:
                raise cls(sentence or f"{what} refused its arguments")
            raise bk.BackupError(sentence or f"{what} failed (exit {code})", detail)
        return await ctr.stdout()

    @side_effect
    async def backup(
        self,
        host: Annotated[str, Doc("PostgreSQL host the engine can reach")],
        password: Annotated[dagger.Secret, Doc("the read-only role's password")],
        port: Annotated[int, Doc("PostgreSQL port")] = pg.PORT,
        database: Annotated[str, Doc("database")] = pg.DEFAULT_DATABASE,
        user: Annotated[str, Doc("read-only role")] = pg.DEFAULT_ROLES["readonly"],
        sslmode: Annotated[str, Doc("'' = require for public hosts")] = "",
        pg_ca: Annotated[dagger.File | None, Doc("PostgreSQL's CA (verify-ca/full)")] = None,
        keep: Annotated[int, Doc("newest backups kept")] = bk.DEFAULT_KEEP,
        max_age_days: Annotated[int, Doc("also delete older than this (0: no limit)")] = 0,
    ) -> str:
        """pg_dump as the read-only role, verified, uploaded with a manifest; old ones pruned.
        Returns the JSON summary (name, size, SHA-256, schema revision, rows per table)."""
        ctr = self.backup_plan(host, password, port=port, database=database, user=user,
                               sslmode=sslmode, pg_ca=pg_ca, keep=keep,
                               max_age_days=max_age_days)  # fmt: skip
        return await self._result(ctr, "backup")

    @side_effect
    async def restore(
        self,
        host: Annotated[str, Doc("PostgreSQL host the engine can reach")],
        password: Annotated[dagger.Secret, Doc("the migrator role's password")],
        port: Annotated[int, Doc("PostgreSQL port")] = pg.PORT,
        database: Annotated[str, Doc("target database (empty, from the init scripts)")] = (
            pg.DEFAULT_DATABASE
        ),
        user: Annotated[str, Doc("migrator role (acts as the owner)")] = pg.DEFAULT_ROLES[
            "migrator"
        ],
        owner: Annotated[str, Doc("NOLOGIN owner role")] = pg.DEFAULT_ROLES["owner"],
        backup: Annotated[str, Doc("backup name, or latest")] = bk.LATEST,
        overwrite: Annotated[str, Doc("replace a non-empty target: its database name")] = "",
        source_database: Annotated[str, Doc("whose backups 'latest' picks")] = "",
        sslmode: Annotated[str, Doc("'' = require for public hosts")] = "",
        pg_ca: Annotated[dagger.File | None, Doc("PostgreSQL's CA (verify-ca/full)")] = None,
    ) -> str:
        """Download, prove whole (size, SHA-256, full decode, row counts), restore in one
        transaction as the owner, check rows, revision and owners. Returns the JSON summary."""
        ctr = self.restore_plan(host, password, port=port, database=database, user=user,
                                owner=owner, backup=backup, overwrite=overwrite,
                                source_database=source_database, sslmode=sslmode,
                                pg_ca=pg_ca)  # fmt: skip
        return await self._result(ctr, "restore")

    @side_effect
    async def list_backups(self) -> str:
        """The backups under the prefix (JSON): name, database, time, complete."""
        return await self._result(self.runner(["list", *self._store_args()]), "list")

    @side_effect
    async def verify(
        self,
        backup: Annotated[str, Doc("backup name, or latest")] = bk.LATEST,
        database: Annotated[str, Doc("whose backups 'latest' picks")] = pg.DEFAULT_DATABASE,
    ) -> str:
        """Download a backup and prove it whole, without touching any database."""
        argv = ["verify", *self._store_args(), "--backup", backup, "--database", database]
        return await self._result(self.runner(argv), "verify")
