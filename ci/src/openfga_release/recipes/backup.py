"""Logical backups of OpenFGA's PostgreSQL to S3-compatible storage, and restores.

Plain module (no dagger import); the CLI (``python -m openfga_release.recipes.backup``)
is what the Dagger functions, the Kubernetes CronJob and the KraftCloud one-shot
instance run, in an image with the PostgreSQL client tools of the server's major.

Backup (as the read-only role; never a superuser):

* ``pg_dump`` in the custom format, compressed, of the ``public`` schema only
  (OpenFGA's tables, sequences and ``goose_db_version``; the superuser's
  ``monitoring`` schema is none of its business), without owners or grants:
  a restore takes them from the init scripts. ``pg_dump`` reads everything in
  one REPEATABLE READ snapshot: the backup is consistent.
* The archive is decoded in full (``pg_restore``) before upload: a dump that
  cannot be read is never uploaded. The rows of every table are counted and the
  schema revision read from the archive itself.
* Upload: ``<prefix>/openfga-backup-<database>-<UTC time>.pgdump``, then a
  manifest ``....manifest.json`` beside it (size, SHA-256, row counts, schema
  revision, versions). The manifest is written last: a backup without one is
  incomplete and never restored.
* Retention: after a successful upload, backups beyond the ``keep`` newest, or
  older than ``max_age_days``, are deleted. Only objects under the prefix whose
  names this tool makes are ever touched, and the newest backup never is.

Restore (as the migrator, whose sessions act as the NOLOGIN owner):

* The target is checked first: not a superuser, and an empty ``public`` schema
  unless ``--overwrite <database>`` names the target database.
* The dump is downloaded and its size and SHA-256 compared with the manifest,
  then decoded and its row counts compared, before anything touches the target:
  a truncated or corrupted backup is refused with nothing restored.
* ``pg_restore --no-owner --no-privileges --role=<owner>`` writes the SQL, which
  ``psql --single-transaction`` runs: either all of it lands or nothing does.
  Tables are created by the owner, so the init scripts' default privileges
  give ``openfga_app`` and ``openfga_readonly`` exactly their usual grants.
* Afterwards the schema revision, the row count of every table, and the
  owner of every relation are checked against the manifest.

Client: ``boto3`` (the AWS SDK for Python, pinned :data:`BOTO3_VERSION`), the
most used S3 client, which speaks to any S3-compatible store (path-style
addressing, custom endpoint and CA) and does multipart uploads itself.
Secrets come only from the environment: :data:`PASSWORD_ENV` (libpq reads it),
:data:`ACCESS_KEY_ENV`, :data:`SECRET_KEY_ENV`; none of them ever reaches argv,
a log, a manifest or an error message.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from . import postgres as pgconf
from .dsn import Dsn, DsnError, is_private
from .errors import InputError, StepError
from .migrate import revision_from_rows

FORMAT = "openfga-backup/1"
NAME_PREFIX = "openfga-backup-"
DUMP_SUFFIX = ".pgdump"
MANIFEST_SUFFIX = ".manifest.json"
TIME_FORMAT = "%Y%m%dT%H%M%SZ"
# Only names this tool makes: openfga-backup-<database>-<UTC time>.pgdump (+ manifest).
_OWN_NAME = re.compile(
    r"openfga-backup-(?P<database>[a-z_][a-z0-9_]{0,62})-(?P<time>\d{8}T\d{6}Z)"
    r"(?P<suffix>\.pgdump|\.manifest\.json)"
)

PASSWORD_ENV = "PGPASSWORD"  # noqa: S105 (a variable name): libpq reads it
ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 (a variable name)
SECRET_ENV = (PASSWORD_ENV, ACCESS_KEY_ENV, SECRET_KEY_ENV)
BOTO3_VERSION = "1.44.5"  # pinned: pyproject.toml (dev) and the backup image install this
# What the CLI imports beyond the stdlib, pinned as in pyproject.toml (dev): boto3 for S3, and
# anyio, which recipes.migrate (owner of the schema-revision rule) imports. The backup image
# installs exactly these; tests/real/test_backup.py rebuilds that runtime and runs the CLI.
IMAGE_REQUIREMENTS = (f"boto3=={BOTO3_VERSION}", "anyio==4.16.0")
SCHEMA = "public"
COMPRESS_LEVEL = 6  # gzip level: ~5x smaller than plain for OpenFGA's tables, cheap to write
LOCK_WAIT_TIMEOUT = 120  # seconds: pg_dump gives up instead of queueing behind a migration
DEFAULT_KEEP = 14
DEFAULT_REGION = "us-east-1"
APPLICATION_NAME = "openfga-backup"
CONNECT_TIMEOUT = 10
LATEST = "latest"
# The image the backup runs in: the PostgreSQL client tools must be of the server's major.
BACKUP_BASE_IMAGE = pgconf.POSTGRES_IMAGE
WORKDIR = "/var/lib/openfga-backup"  # scratch space for the dump (an emptyDir on Kubernetes)
PACKAGE_DIR = "/opt/openfga-backup"  # PYTHONPATH: openfga_release/recipes/*.py
VENV = "/opt/openfga-backup/venv"


class BackupInputError(InputError):
    """A backup or restore argument that cannot work; raised before anything runs."""


class BackupError(StepError):
    """A backup or restore that ran and failed."""


class ObjectStoreError(BackupError):
    """The object store could not be reached, refused the credentials, or lacks an object."""


class CorruptBackup(BackupError):
    """A backup whose bytes do not match its manifest, or that does not decode."""


class TargetNotEmpty(BackupError):
    """Restoring over existing tables without ``--overwrite <database>``."""


# ------------------------------------------------------------------ naming, retention


def backup_name(database: str, when: datetime) -> str:
    """``openfga-backup-<database>-<UTC time>``: what every object of one backup starts with."""
    pgconf.check_name("database", database)
    return f"{NAME_PREFIX}{database}-{when.astimezone(UTC).strftime(TIME_FORMAT)}"


@dataclass(frozen=True, order=True)
class BackupRef:
    """One backup found in the store (by its own naming), oldest first when sorted."""

    time: datetime
    name: str
    database: str
    complete: bool = field(default=False, compare=False)  # its manifest exists


def parse_keys(keys: Iterable[str], prefix: str) -> list[BackupRef]:
    """The backups among ``keys`` (full object keys): only our own names, directly under
    ``prefix``; anything else under the prefix is not ours and is ignored."""
    found: dict[str, tuple[BackupRef, set[str]]] = {}
    base = f"{prefix}/" if prefix else ""
    for key in keys:
        if not key.startswith(base):
            continue
        m = _OWN_NAME.fullmatch(key[len(base):])
        if not m:
            continue
        name = key[len(base):][: -len(m.group("suffix"))]
        when = datetime.strptime(m.group("time"), TIME_FORMAT).replace(tzinfo=UTC)
        _, suffixes = found.setdefault(name, (BackupRef(when, name, m.group("database")), set()))
        suffixes.add(m.group("suffix"))
    return sorted(
        BackupRef(ref.time, ref.name, ref.database, {DUMP_SUFFIX, MANIFEST_SUFFIX} <= suffixes)
        for ref, suffixes in found.values()
    )


def check_retention(keep: int, max_age_days: int | None) -> None:
    if keep < 1:
        raise BackupInputError(f"keep={keep}: keep at least 1 backup (the one just made)")
    if max_age_days is not None and max_age_days < 1:
        raise BackupInputError(
            f"max_age_days={max_age_days}: give a whole number of days, at least 1, or none"
        )


def retention_plan(
    backups: Iterable[BackupRef],
    database: str,
    now: datetime,
    keep: int = DEFAULT_KEEP,
    max_age_days: int | None = None,
    incomplete_grace: timedelta = timedelta(days=1),
) -> list[BackupRef]:
    """The backups of ``database`` to delete: complete ones beyond the ``keep`` newest or
    older than ``max_age_days`` (the newest complete one never), and incomplete ones
    (no manifest: a failed upload) older than the newest complete one and than
    ``incomplete_grace`` (a backup still uploading is left alone)."""
    check_retention(keep, max_age_days)
    mine = sorted((b for b in backups if b.database == database), reverse=True)
    complete = [b for b in mine if b.complete]
    if not complete:
        return []
    newest = complete[0]
    doomed = []
    for i, b in enumerate(complete):
        too_old = max_age_days is not None and now - b.time > timedelta(days=max_age_days)
        if b is not newest and (i >= keep or too_old):
            doomed.append(b)
    doomed += [b for b in mine if not b.complete and b.time < newest.time
               and now - b.time > incomplete_grace]  # fmt: skip
    return sorted(doomed)


# ------------------------------------------------------------------ object store


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class ObjectStore:
    """Where backups go: an S3-compatible endpoint, a bucket and a prefix (no secrets)."""

    endpoint: str
    bucket: str
    prefix: str = ""
    region: str = DEFAULT_REGION
    ca_file: str | None = None  # a CA bundle for an endpoint with a private CA
    path_style: bool = True  # every S3-compatible server speaks it; AWS does too

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise BackupInputError(
                f"object store endpoint {self.endpoint!r} is not an http(s) URL such as "
                "https://s3.eu-west-1.amazonaws.com or http://minio.backup.svc:9000"
            )
        if parts.username or parts.password or parts.query or parts.fragment:
            raise BackupInputError(
                "the object store endpoint must be scheme://host[:port] only: credentials go "
                f"in {ACCESS_KEY_ENV}/{SECRET_KEY_ENV} (secrets), never in the URL"
            )
        if parts.scheme == "http" and not is_private(parts.hostname):
            raise BackupInputError(
                f"object store endpoint {parts.hostname} is reached over the network in clear "
                "text: use https:// (TLS is required for any host that is not loopback or on a "
                "private network)"
            )
        if not _BUCKET.fullmatch(self.bucket) or ".." in self.bucket:
            raise BackupInputError(
                f"bucket {self.bucket!r} is not a valid S3 bucket name: 3-63 lowercase letters, "
                "digits, dots and hyphens, starting and ending with a letter or digit"
            )
        prefix = self.prefix.strip("/")
        if any(seg in ("", ".", "..") for seg in prefix.split("/")) and prefix:
            raise BackupInputError(
                f"prefix {self.prefix!r} has an empty, '.' or '..' segment: use a plain path "
                "such as openfga/production"
            )
        if any(c in prefix for c in "\\*?#\n\r\t"):
            raise BackupInputError(f"prefix {self.prefix!r}: use letters, digits, - _ . and /")
        object.__setattr__(self, "prefix", prefix)
        if not re.fullmatch(r"[a-z0-9-]{2,32}", self.region):
            raise BackupInputError(f"region {self.region!r} is not a region name (us-east-1)")

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + ("/" if self.prefix else "")


def _credentials(env: Mapping[str, str]) -> tuple[str, str]:
    missing = [v for v in (ACCESS_KEY_ENV, SECRET_KEY_ENV) if not env.get(v)]
    if missing:
        raise BackupInputError(
            f"{' and '.join(missing)} not set: give the object store's access key id and "
            "secret access key as secrets (environment variables)"
        )
    return env[ACCESS_KEY_ENV], env[SECRET_KEY_ENV]


_CREDENTIAL_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                     "ExpiredToken", "AccessDenied", "Forbidden", "403",
                     "InvalidClientTokenId", "AuthorizationHeaderMalformed")  # fmt: skip


class Store:
    """The few S3 calls a backup needs, every failure turned into one clear sentence."""

    def __init__(self, where: ObjectStore, env: Mapping[str, str]) -> None:
        import boto3  # type: ignore[import-untyped]  # lazily: only the backup image has it
        from botocore.config import Config  # type: ignore[import-untyped]

        access, secret = _credentials(env)
        self.where = where
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=where.endpoint,
            region_name=where.region,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            verify=where.ca_file if where.ca_file else True,
            config=Config(
                s3={"addressing_style": "path" if where.path_style else "auto"},
                connect_timeout=10,
                read_timeout=120,
                retries={"max_attempts": 3, "mode": "standard"},
                # Plain MD5/SigV4 payload signing: what every S3-compatible server accepts.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def _explain(self, what: str, err: Exception, key: str | None = None) -> ObjectStoreError:
        from botocore import exceptions as bx  # type: ignore[import-untyped]

        endpoint = self.where.endpoint
        if isinstance(err, bx.SSLError):
            return ObjectStoreError(
                f"{what}: the TLS handshake with {endpoint} failed (certificate not trusted or "
                "wrong host name): give the CA bundle that signed it (--ca-file)"
            )
        if isinstance(err, bx.EndpointConnectionError | bx.ConnectTimeoutError |
                      bx.ReadTimeoutError | bx.ConnectionClosedError):  # fmt: skip
            return ObjectStoreError(
                f"{what}: cannot reach the object store at {endpoint} (connection refused or "
                "timed out): check the endpoint URL, that the store is running, and that the "
                "network (NetworkPolicy, firewall) lets this job reach it"
            )
        if isinstance(err, bx.ClientError):
            code = str(err.response.get("Error", {}).get("Code", ""))
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            # (versitygw answers an unknown key id with XAdminUserNotFound)
            if code in _CREDENTIAL_CODES or code.endswith("UserNotFound") or status in (401, 403):
                answer = code or status
                return ObjectStoreError(
                    f"{what}: the object store at {endpoint} refused the credentials ({answer}): "
                    "check the access key id and secret access key secrets, and that this key "
                    f"may read, write, list and delete in {self.where.where()}"
                )
            if code == "NoSuchBucket":
                return ObjectStoreError(
                    f"{what}: bucket {self.where.bucket!r} does not exist at {endpoint}: create "
                    "it (with versioning or object lock if you want deleted backups kept) or fix "
                    "the bucket name"
                )
            if code in ("NoSuchKey", "404", "NotFound"):
                return ObjectStoreError(
                    f"{what}: s3://{self.where.bucket}/{key} does not exist: list the backups "
                    "with the list command and pick one of them"
                )
            return ObjectStoreError(f"{what}: the object store answered {code or status}")
        if isinstance(err, bx.BotoCoreError):
            return ObjectStoreError(f"{what}: {type(err).__name__} talking to {endpoint}")
        raise err

    @contextlib.contextmanager
    def _calling(self, what: str, key: str | None = None) -> Iterator[None]:
        from botocore import exceptions as bx

        try:
            yield
        except (bx.BotoCoreError, bx.ClientError) as err:
            raise self._explain(what, err, key) from None

    def check(self) -> None:
        """Fail fast: the endpoint answers and the credentials may list the prefix."""
        with self._calling(f"checking access to {self.where.where()}"):
            self.client.list_objects_v2(
                Bucket=self.where.bucket, Prefix=self.where.key(NAME_PREFIX), MaxKeys=1
            )

    def keys(self) -> list[str]:
        out: list[str] = []
        base = self.where.key(NAME_PREFIX)
        with self._calling(f"listing {self.where.where()}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.where.bucket, Prefix=base
            )
            for page in pages:
                out += [o["Key"] for o in page.get("Contents", [])]
        return out

    def backups(self) -> list[BackupRef]:
        return parse_keys(self.keys(), self.where.prefix)

    def exists(self, key: str) -> bool:
        from botocore import exceptions as bx

        try:
            self.client.head_object(Bucket=self.where.bucket, Key=key)
        except bx.ClientError as err:
            if str(err.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._explain(f"looking for {key}", err, key) from None
        except bx.BotoCoreError as err:
            raise self._explain(f"looking for {key}", err, key) from None
        return True

    def upload(self, path: Path, key: str, content_type: str) -> None:
        with self._calling(f"uploading {key}", key):
            self.client.upload_file(
                str(path), self.where.bucket, key, ExtraArgs={"ContentType": content_type}
            )

    def put_bytes(self, data: bytes, key: str, content_type: str) -> None:
        with self._calling(f"uploading {key}", key):
            self.client.put_object(
                Bucket=self.where.bucket, Key=key, Body=data, ContentType=content_type
            )

    def get_bytes(self, key: str, limit: int = 1 << 20) -> bytes:
        with self._calling(f"downloading {key}", key):
            body = self.client.get_object(Bucket=self.where.bucket, Key=key)["Body"]
            data: bytes = body.read(limit + 1)
        if len(data) > limit:
            raise CorruptBackup(f"{key} is larger than {limit} bytes: not a manifest of this tool")
        return data

    def download(self, key: str, path: Path) -> None:
        with self._calling(f"downloading {key}", key):
            self.client.download_file(self.where.bucket, key, str(path))

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            with self._calling(f"deleting {len(chunk)} old backup objects"):
                answer = self.client.delete_objects(
                    Bucket=self.where.bucket,
                    Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
                )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise ObjectStoreError(
                    f"deleting old backups: {first.get('Key')}: {first.get('Code')} (the new "
                    "backup is safe; give the key delete permission on the prefix)"
                )


# ------------------------------------------------------------------ database side


@dataclass(frozen=True)
class Database:
    """A connection target (no password: that is :data:`PASSWORD_ENV`)."""

    host: str
    database: str
    user: str
    port: int = pgconf.PORT
    sslmode: str = ""  # "" picks dsn.default_sslmode(host): require for public hosts
    sslrootcert: str | None = None

    def __post_init__(self) -> None:
        pgconf.check_name("database", self.database)
        if self.user == "postgres":
            raise BackupInputError(
                "backups and restores never run as the superuser postgres: back up as the "
                "read-only role (openfga_readonly), restore as the migrator (openfga_migrator)"
            )
        try:
            self.dsn()
        except DsnError as err:
            raise BackupInputError(str(err)) from None

    def dsn(self) -> Dsn:
        params = {"application_name": APPLICATION_NAME}
        if self.sslrootcert:
            params["sslrootcert"] = self.sslrootcert
        return Dsn(host=self.host, port=self.port, database=self.database, user=self.user,
                   sslmode=self.sslmode, connect_timeout=CONNECT_TIMEOUT,
                   params=params)  # fmt: skip

    def uri(self) -> str:
        """For ``--dbname``: the password is never in it (libpq reads PGPASSWORD)."""
        return self.dsn().public_uri()


def pg_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment of the PostgreSQL client tools: the password and nothing that could
    redirect the connection (PGHOST, PGSERVICE... are dropped; the URI says it all)."""
    keep = {k: v for k, v in env.items() if not k.startswith("PG") and k not in SECRET_ENV[1:]}
    keep["PGCONNECT_TIMEOUT"] = str(CONNECT_TIMEOUT)
    if env.get(PASSWORD_ENV):
        keep[PASSWORD_ENV] = env[PASSWORD_ENV]
    if env.get("PGPASSFILE"):
        keep["PGPASSFILE"] = env["PGPASSFILE"]
    keep.setdefault("LC_ALL", "C.UTF-8")
    return keep


def tool(bindir: str | None, name: str) -> str:
    if bindir:
        return str(Path(bindir) / name)
    found = shutil.which(name)
    if not found:
        raise BackupInputError(
            f"{name} is not on PATH: run in the backup image (PostgreSQL client tools of the "
            "server's major) or pass --pg-bin"
        )
    return found


def dump_command(db: Database, out: str, bindir: str | None = None,
                 lock_wait_timeout: int = LOCK_WAIT_TIMEOUT) -> list[str]:  # fmt: skip
    """pg_dump: custom format, compressed, ``public`` only, no owners or grants, one snapshot."""
    return [
        tool(bindir, "pg_dump"), f"--dbname={db.uri()}", "--format=custom",
        f"--compress={COMPRESS_LEVEL}", f"--schema={SCHEMA}", "--no-owner", "--no-privileges",
        "--no-comments", "--no-publications", "--no-subscriptions", "--no-security-labels",
        "--no-tablespaces", f"--lock-wait-timeout={lock_wait_timeout}s", f"--file={out}",
    ]  # fmt: skip


def data_command(archive: str, bindir: str | None = None) -> list[str]:
    """Every row of the archive as COPY text on stdout (decodes, and so checks, all of it)."""
    return [tool(bindir, "pg_restore"), "--data-only", "--file=-", archive]


def script_command(archive: str, owner: str, bindir: str | None = None) -> list[str]:
    """The restore as SQL on stdout: created by ``owner``, grants left to default privileges."""
    return [
        tool(bindir, "pg_restore"), "--no-owner", "--no-privileges", f"--role={owner}",
        f"--schema={SCHEMA}", "--no-comments", "--no-publications", "--no-subscriptions",
        "--no-security-labels", "--no-tablespaces", "--exit-on-error", "--file=-", archive,
    ]  # fmt: skip


def psql_command(db: Database, bindir: str | None = None) -> list[str]:
    return [tool(bindir, "psql"), "--no-psqlrc", "--quiet", "--tuples-only", "--no-align",
            "--set=ON_ERROR_STOP=1", f"--dbname={db.uri()}"]  # fmt: skip


PREFLIGHT_SQL = f"""
SELECT json_build_object(
  'session_user', session_user::text,
  'current_user', current_user::text,
  'superuser', (SELECT bool_or(rolsuper) FROM pg_roles
                 WHERE rolname IN (session_user, current_user)),
  'server_version_num', current_setting('server_version_num')::int,
  'server_version', current_setting('server_version'),
  'database', current_database()::text,
  'relations', (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = '{SCHEMA}' AND c.relkind IN ('r','p','v','m','S','f')),
  'has_goose', to_regclass('{SCHEMA}.goose_db_version') IS NOT NULL)
"""  # noqa: S608 (constants only)

# Tables, owners and the schema revision; the row counts follow (one query built from these).
STATE_SQL = f"""
SELECT json_build_object(
  'tables', (SELECT coalesce(json_agg(c.relname ORDER BY c.relname), '[]'::json)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = '{SCHEMA}' AND c.relkind IN ('r','p')),
  'owners', (SELECT coalesce(json_object_agg(c.relname, pg_get_userbyid(c.relowner)),
                            '{{}}'::json)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = '{SCHEMA}' AND c.relkind IN ('r','p','v','m','S','f','i')),
  'revision', CASE WHEN to_regclass('{SCHEMA}.goose_db_version') IS NULL THEN NULL ELSE
     (SELECT json_agg(json_build_array(version_id, is_applied) ORDER BY id DESC)
        FROM {SCHEMA}.goose_db_version) END)
"""  # noqa: S608 (constants only)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def count_sql(tables: list[str]) -> str:
    """One statement counting the rows of every table, as a JSON object."""
    if not tables:
        return "SELECT '{}'::json"
    pairs = ", ".join(
        f"{_literal(t)}, (SELECT count(*) FROM {SCHEMA}.{_ident(t)})"  # noqa: S608 (quoted)
        for t in tables
    )
    return f"SELECT json_build_object({pairs})"


def _overwrite_sql(owner: str) -> str:
    """Drops what is in ``public`` (as the owner, in the restore's transaction)."""
    pgconf.check_name("owner", owner)
    return f"""
SET ROLE {owner};
DO $drop$
DECLARE r record;
BEGIN
  FOR r IN SELECT format('DROP %s IF EXISTS %I.%I CASCADE',
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                       WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                  n.nspname, c.relname) AS stmt
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = '{SCHEMA}' AND c.relkind IN ('r','p','v','m','S','f')
            ORDER BY c.relkind = 'S'
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN SELECT format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure) AS stmt
             FROM pg_proc p WHERE p.pronamespace = '{SCHEMA}'::regnamespace
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN SELECT format('DROP TYPE IF EXISTS %I.%I CASCADE', '{SCHEMA}', t.typname) AS stmt
             FROM pg_type t WHERE t.typnamespace = '{SCHEMA}'::regnamespace
              AND t.typtype IN ('c','e','d','r') AND t.typrelid = 0
  LOOP EXECUTE r.stmt; END LOOP;
END
$drop$;
"""  # noqa: S608 (a checked identifier)


def _redact(text: str, env: Mapping[str, str]) -> str:
    for var in SECRET_ENV:
        value = env.get(var)
        if value:
            text = text.replace(value, "***")
    return text


def _last_lines(text: str, n: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def run_sql(db: Database, sql: str, env: Mapping[str, str], bindir: str | None = None,
            what: str = "querying the database") -> Any:  # fmt: skip
    """One statement returning one JSON value, through psql."""
    proc = subprocess.run(
        [*psql_command(db, bindir), f"--command={sql}"], env=pg_env(env),
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        raise _pg_failure(what, db, _redact(proc.stderr, env))
    return json.loads(proc.stdout.strip() or "null")


def _pg_failure(what: str, db: Database, stderr: str) -> BackupError:
    low = stderr.lower()
    where = f"{db.user}@{db.host}:{db.port}/{db.database}"
    if "password authentication failed" in low or "no password supplied" in low:
        hint = f"the password for {db.user} was refused: check the {PASSWORD_ENV} secret"
    elif "could not connect" in low or "connection refused" in low or "timeout expired" in low:
        hint = "the server cannot be reached: check host, port and that PostgreSQL is running"
    elif "no pg_hba.conf entry" in low or ("ssl" in low and "required" in low):
        hint = "the server refuses this connection: it requires TLS (use sslmode=require or " \
               "stricter) for network logins"
    elif "permission denied" in low:
        hint = f"{db.user} lacks a privilege (see the message below): back up as the read-only " \
               "role, restore as the migrator, both as the init scripts make them"
    elif "lock timeout" in low or ("statement timeout" in low and "lock table" in low):
        hint = "a table stayed locked longer than the lock-wait timeout (a migration running?): " \
               "nothing was uploaded; run the backup again when it is done"
    elif "server version mismatch" in low or "aborting because of server version" in low:
        hint = "the client tools are older than the server: use the backup image of the " \
               "server's major"
    else:
        hint = "see the message below"
    return BackupError(f"{what} as {where} failed: {hint}", _last_lines(stderr))


def preflight(db: Database, env: Mapping[str, str], bindir: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = run_sql(db, PREFLIGHT_SQL, env, bindir, "connecting")
    if info.get("superuser"):
        raise BackupInputError(
            f"{info['session_user']} (acting as {info['current_user']}) is a superuser: "
            "backups run as the read-only role and restores as the migrator, never as a superuser"
        )
    return info


# ------------------------------------------------------------------ archive


@dataclass
class ArchiveInfo:
    tables: dict[str, int]
    revision: int


def _copy_header(line: str) -> tuple[str, list[str]] | None:
    m = re.match(r'COPY (?:"?(\w+)"?\.)?"?(\w+)"? \((.*)\) FROM stdin;$', line)
    if not m:
        return None
    return m.group(2), [c.strip().strip('"') for c in m.group(3).split(",")]


def scan_stream(lines: Iterable[str]) -> ArchiveInfo:
    """Count the rows of every COPY block and read ``goose_db_version`` from a data dump."""
    tables: dict[str, int] = {}
    goose: list[tuple[int, int, bool]] = []  # (id, version_id, is_applied)
    current: str | None = None
    columns: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if current is None:
            head = _copy_header(line)
            if head:
                current, columns = head
                tables[current] = 0
            continue
        if line == "\\.":
            current = None
            continue
        tables[current] += 1
        if current == "goose_db_version":
            row = dict(zip(columns, line.split("\t"), strict=False))
            goose.append((int(row.get("id", "0")), int(row.get("version_id", "0")),
                          row.get("is_applied") == "t"))
    if current is not None:
        raise CorruptBackup(f"the archive ends inside the rows of {current}: it is truncated")
    newest_first = [(version, applied) for _, version, applied in sorted(goose, reverse=True)]
    return ArchiveInfo(tables, revision_from_rows(newest_first))


def scan_archive(archive: Path, bindir: str | None = None) -> ArchiveInfo:
    """Decode the whole archive with pg_restore: a damaged one raises :class:`CorruptBackup`."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(data_command(str(archive), bindir), stdout=subprocess.PIPE,
                                stderr=err, text=True, env=pg_env({}))  # fmt: skip
        assert proc.stdout is not None
        try:
            info = scan_stream(proc.stdout)
        finally:
            proc.stdout.close()
            code = proc.wait()
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if code != 0:
        raise CorruptBackup(
            f"the archive {archive.name} cannot be read back (pg_restore exit {code}): it is "
            "truncated or corrupted; nothing was restored",
            _last_lines(stderr),
        )
    return info


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


# ------------------------------------------------------------------ manifest


@dataclass(frozen=True)
class Manifest:
    """The facts stored beside each dump; a restore trusts the dump only if they match."""

    name: str
    dump: str  # object name of the dump, beside the manifest
    size: int
    sha256: str
    created: str  # ISO 8601, UTC
    database: str
    role: str  # who took it
    server_version: str
    client_version: str
    schema_revision: int
    tables: dict[str, int]
    format: str = FORMAT

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, key: str) -> Manifest:
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}")
            m = cls(**raw)
            if not re.fullmatch(r"[0-9a-f]{64}", m.sha256) or m.size <= 0:
                raise ValueError("sha256/size")
            if not all(isinstance(v, int) for v in m.tables.values()):
                raise ValueError("tables")
        except (ValueError, TypeError, AttributeError) as err:
            raise CorruptBackup(
                f"the manifest {key} is not a valid {FORMAT} manifest ({err}): it is damaged "
                "or was not written by this tool; pick another backup"
            ) from None
        return m


# ------------------------------------------------------------------ backup


def _client_version(bindir: str | None) -> str:
    out = subprocess.run([tool(bindir, "pg_dump"), "--version"], capture_output=True, text=True)
    return out.stdout.strip()


def backup(
    db: Database,
    where: ObjectStore,
    env: Mapping[str, str],
    *,
    keep: int = DEFAULT_KEEP,
    max_age_days: int | None = None,
    bindir: str | None = None,
    workdir: str | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    store: Store | None = None,
    lock_wait_timeout: int = LOCK_WAIT_TIMEOUT,
) -> dict[str, Any]:
    """Dump, verify, upload, write the manifest, apply retention. Returns a summary."""
    check_retention(keep, max_age_days)
    if lock_wait_timeout < 1:
        raise BackupInputError("lock-wait-timeout must be at least 1 second")
    store = store or Store(where, env)
    store.check()
    info = preflight(db, env, bindir)
    started = now()
    name = backup_name(db.database, started)
    dump_key, manifest_key = store.where.key(name + DUMP_SUFFIX), store.where.key(
        name + MANIFEST_SUFFIX
    )
    if store.exists(dump_key) or store.exists(manifest_key):
        raise ObjectStoreError(f"{dump_key} already exists: another backup ran this second; "
                               "run again")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="openfga-backup-", dir=workdir) as tmp:
        archive = Path(tmp) / (name + DUMP_SUFFIX)
        proc = subprocess.run(dump_command(db, str(archive), bindir, lock_wait_timeout),
                              env=pg_env(env),
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            raise _pg_failure("pg_dump", db, _redact(proc.stderr, env))
        scanned = scan_archive(archive, bindir)
        digest, size = sha256_file(archive)
        dumped = now()
        manifest = Manifest(
            name=name, dump=name + DUMP_SUFFIX, size=size, sha256=digest,
            created=started.isoformat().replace("+00:00", "Z"), database=db.database,
            role=str(info["session_user"]), server_version=str(info["server_version"]),
            client_version=_client_version(bindir), schema_revision=scanned.revision,
            tables=scanned.tables,
        )  # fmt: skip
        store.upload(archive, dump_key, "application/octet-stream")
    store.put_bytes(manifest.to_json(), manifest_key, "application/json")
    uploaded = now()
    doomed = retention_plan(store.backups(), db.database, uploaded, keep, max_age_days)
    store.delete([store.where.key(b.name + s) for b in doomed
                  for s in (DUMP_SUFFIX, MANIFEST_SUFFIX)])  # fmt: skip
    return {
        "backup": name,
        "dump": f"s3://{where.bucket}/{dump_key}",
        "size": size,
        "sha256": digest,
        "schema_revision": scanned.revision,
        "tables": scanned.tables,
        "dump_seconds": round((dumped - started).total_seconds(), 3),
        "total_seconds": round((uploaded - started).total_seconds(), 3),
        "deleted": [b.name for b in doomed],
    }


# ------------------------------------------------------------------ restore


def choose(backups: list[BackupRef], database: str, wanted: str) -> BackupRef:
    complete = [b for b in backups if b.complete]
    if wanted == LATEST:
        mine = [b for b in complete if b.database == database]
        if not mine:
            raise ObjectStoreError(
                f"no complete backup of database {database!r} under the prefix: "
                + (f"found {', '.join(b.name for b in complete[-5:])}" if complete else
                   "it holds none")
            )
        return mine[-1]
    for b in backups:
        if b.name == wanted or b.name + DUMP_SUFFIX == wanted:
            if not b.complete:
                raise CorruptBackup(f"{b.name} has no manifest: that upload never finished; "
                                    "pick another backup")  # fmt: skip
            return b
    raise ObjectStoreError(
        f"no backup named {wanted!r} under the prefix; the newest are: "
        + (", ".join(b.name for b in complete[-5:]) or "none")
    )


def fetch_verified(store: Store, ref: BackupRef, dest: Path,
                   bindir: str | None = None) -> tuple[Manifest, Path, ArchiveInfo]:  # fmt: skip
    """Download a backup and prove it whole: size, SHA-256, full decode, row counts."""
    manifest_key = store.where.key(ref.name + MANIFEST_SUFFIX)
    manifest = Manifest.from_json(store.get_bytes(manifest_key), manifest_key)
    if manifest.dump != ref.name + DUMP_SUFFIX:
        raise CorruptBackup(f"the manifest {manifest_key} describes {manifest.dump}, not "
                            f"{ref.name}{DUMP_SUFFIX}: pick another backup")  # fmt: skip
    archive = dest / manifest.dump
    store.download(store.where.key(manifest.dump), archive)
    digest, size = sha256_file(archive)
    if size != manifest.size:
        raise CorruptBackup(
            f"backup {ref.name} is truncated or damaged: {size} bytes stored, the manifest says "
            f"{manifest.size}; nothing was restored: pick an earlier backup"
        )
    if digest != manifest.sha256:
        raise CorruptBackup(
            f"backup {ref.name} is corrupted: its SHA-256 does not match the manifest; nothing "
            "was restored: pick an earlier backup"
        )
    scanned = scan_archive(archive, bindir)
    if scanned.tables != manifest.tables or scanned.revision != manifest.schema_revision:
        raise CorruptBackup(
            f"backup {ref.name} does not hold what its manifest says (row counts or schema "
            "revision differ); nothing was restored: pick an earlier backup"
        )
    return manifest, archive, scanned


def read_state(db: Database, env: Mapping[str, str], bindir: str | None = None) -> dict[str, Any]:
    """Row counts per table, owners, and the schema revision of a database."""
    state: dict[str, Any] = run_sql(db, STATE_SQL, env, bindir, "reading the restored state")
    state["tables"] = run_sql(db, count_sql(state["tables"]), env, bindir, "counting rows")
    rows = state.pop("revision")
    state["revision"] = revision_from_rows((int(v), bool(a)) for v, a in rows or [])
    return state


def restore(
    db: Database,
    where: ObjectStore,
    env: Mapping[str, str],
    *,
    owner: str = pgconf.DEFAULT_ROLES["owner"],
    backup_name_: str = LATEST,
    source_database: str | None = None,
    overwrite: str | None = None,
    bindir: str | None = None,
    workdir: str | None = None,
    store: Store | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """Restore a verified backup into ``db`` as ``owner`` (see the module docstring)."""
    pgconf.check_name("owner", owner)
    if overwrite is not None and overwrite != db.database:
        raise BackupInputError(
            f"--overwrite names {overwrite!r}, but the target database is {db.database!r}: "
            "name the database you mean to replace"
        )
    started = now()
    store = store or Store(where, env)
    store.check()
    info = preflight(db, env, bindir)
    if int(info["relations"]) and overwrite is None:
        raise TargetNotEmpty(
            f"the target database {db.database!r} already holds {info['relations']} tables or "
            "sequences: nothing was restored. Restore into a fresh database made by the init "
            f"scripts, or replace its contents with --overwrite {db.database}"
        )
    ref = choose(store.backups(), source_database or db.database, backup_name_)
    with tempfile.TemporaryDirectory(prefix="openfga-restore-", dir=workdir) as tmp:
        manifest, archive, _ = fetch_verified(store, ref, Path(tmp), bindir)
        if int(info["server_version_num"]) // 10000 < _major(manifest.server_version):
            raise BackupInputError(
                f"backup {ref.name} comes from PostgreSQL {manifest.server_version}; the target "
                f"runs {info['server_version']}: restore into the same major or a newer one"
            )
        verified = now()
        _apply(db, archive, owner, overwrite is not None, env, bindir)
    state = read_state(db, env, bindir)
    wrong_owner = sorted(k for k, v in state["owners"].items() if v != owner)
    if state["tables"] != manifest.tables or state["revision"] != manifest.schema_revision:
        raise BackupError(
            f"restored {ref.name}, but the database does not match the manifest (row counts or "
            "schema revision differ): do not serve from it; restore again into a fresh database"
        )
    if wrong_owner:
        raise BackupError(f"restored, but {', '.join(wrong_owner)} not owned by {owner}: "
                          "restore as the migrator role of the init scripts")  # fmt: skip
    done = now()
    return {
        "restored": ref.name,
        "into": db.database,
        "schema_revision": state["revision"],
        "tables": state["tables"],
        "owner": owner,
        "overwrote": overwrite is not None,
        "verify_seconds": round((verified - started).total_seconds(), 3),
        "total_seconds": round((done - started).total_seconds(), 3),
    }


def _major(version: str) -> int:
    m = re.match(r"(\d+)", version)
    return int(m.group(1)) if m else 0


def _apply(db: Database, archive: Path, owner: str, overwrite: bool,
           env: Mapping[str, str], bindir: str | None) -> None:  # fmt: skip
    """pg_restore's SQL piped into one psql transaction (after the drops, when overwriting)."""
    with tempfile.TemporaryDirectory(prefix="openfga-restore-sql-") as tmp:
        files = []
        if overwrite:
            prologue = Path(tmp) / "overwrite.sql"
            prologue.write_text(_overwrite_sql(owner))
            files.append(f"--file={prologue}")
        psql = [*psql_command(db, bindir), "--single-transaction", *files, "--file=-"]
        with tempfile.TemporaryFile() as rerr, tempfile.TemporaryFile() as perr:
            writer = subprocess.Popen(script_command(str(archive), owner, bindir),
                                      stdout=subprocess.PIPE, stderr=rerr,
                                      env=pg_env({}))  # fmt: skip
            reader = subprocess.Popen(psql, stdin=writer.stdout, stdout=subprocess.DEVNULL,
                                      stderr=perr, env=pg_env(env))  # fmt: skip
            assert writer.stdout is not None
            writer.stdout.close()
            rcode, wcode = reader.wait(), writer.wait()
            rerr.seek(0)
            perr.seek(0)
            werr_text = rerr.read().decode(errors="replace")
            perr_text = _redact(perr.read().decode(errors="replace"), env)
    if wcode != 0:
        raise CorruptBackup(f"pg_restore could not read the archive (exit {wcode}); the "
                            "transaction was rolled back: nothing changed", _last_lines(werr_text))
    if rcode != 0:
        raise _pg_failure("restoring (rolled back: nothing changed)", db, perr_text)


# ------------------------------------------------------------------ schedules (plain data)


def job_env(db: Database, where: ObjectStore, *, keep: int = DEFAULT_KEEP,
            max_age_days: int | None = None) -> dict[str, str]:  # fmt: skip
    """The non-secret environment of a scheduled backup (the CLI reads these)."""
    env = {
        "BACKUP_S3_ENDPOINT": where.endpoint, "BACKUP_S3_BUCKET": where.bucket,
        "BACKUP_S3_PREFIX": where.prefix, "BACKUP_S3_REGION": where.region,
        "BACKUP_PG_HOST": db.host, "BACKUP_PG_PORT": str(db.port),
        "BACKUP_PG_DATABASE": db.database, "BACKUP_PG_USER": db.user,
        "BACKUP_PG_SSLMODE": db.dsn().sslmode, "BACKUP_KEEP": str(keep),
    }  # fmt: skip
    if max_age_days is not None:
        env["BACKUP_MAX_AGE_DAYS"] = str(max_age_days)
    if where.ca_file:
        env["BACKUP_S3_CA_FILE"] = where.ca_file
    if db.sslrootcert:
        env["BACKUP_PG_SSLROOTCERT"] = db.sslrootcert
    return env


_PINNED = re.compile(
    r"(?:[a-z0-9.-]+(?::\d+)?/)?[a-z0-9][a-z0-9._/-]*(:v?\d+\.\d+[\w.-]*)?(@sha256:[0-9a-f]{64})?"
)


def check_image(image: str) -> str:
    """The backup image a schedule runs: pinned by digest or a version tag (x.y...)."""
    m = _PINNED.fullmatch(image)
    if not m or not (m.group(1) or m.group(2)):
        raise BackupInputError(
            f"backup image {image!r} is not pinned: name a digest (for example "
            "registry.example.com/openfga-backup@sha256:<64 hex>) or a full version tag, so "
            "every scheduled run uses the same client tools"
        )
    return image


CA_DIR = "/etc/openfga-backup/ca"
CA_FILE_NAME = "ca.crt"
BACKUP_ARGS = ["python3", "-m", "openfga_release.recipes.backup", "backup", "--from-env"]
# Labels the NetworkPolicy selects to let the backup job reach PostgreSQL.
BACKUP_LABELS = {"app.kubernetes.io/name": "openfga-backup",
                 "app.kubernetes.io/component": "backup",
                 "app.kubernetes.io/part-of": "openfga"}  # fmt: skip
_SCHEDULE = re.compile(r"(@(hourly|daily|weekly|monthly|yearly))|(\S+\s+){4}\S+")


def cronjob(
    *,
    image: str,
    namespace: str,
    db: Database,
    where: ObjectStore,
    password_secret: tuple[str, str],
    s3_secret: tuple[str, str, str],
    schedule: str = "17 3 * * *",
    keep: int = DEFAULT_KEEP,
    max_age_days: int | None = None,
    name: str = "openfga-backup",
    ca_secret: tuple[str, str] | None = None,
    scratch: str = "2Gi",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A CronJob for the StatefulSet flavor (plain dict): the read-only role, its password
    and the S3 keys from Secrets (``password_secret`` = (secret, key), ``s3_secret`` =
    (secret, access-key-id key, secret-access-key key)), non-root, read-only root
    filesystem, one run at a time, no retries that could pile up."""
    check_image(image)
    if not _SCHEDULE.fullmatch(schedule.strip()):
        raise BackupInputError(f"schedule {schedule!r} is not a cron expression (17 3 * * *)")
    check_retention(keep, max_age_days)
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in
                                 job_env(db, where, keep=keep, max_age_days=max_age_days).items()]
    env += [
        {"name": PASSWORD_ENV, "valueFrom": {"secretKeyRef": {
            "name": password_secret[0], "key": password_secret[1]}}},
        {"name": ACCESS_KEY_ENV, "valueFrom": {"secretKeyRef": {
            "name": s3_secret[0], "key": s3_secret[1]}}},
        {"name": SECRET_KEY_ENV, "valueFrom": {"secretKeyRef": {
            "name": s3_secret[0], "key": s3_secret[2]}}},
        {"name": "BACKUP_WORKDIR", "value": WORKDIR},
        {"name": "HOME", "value": "/tmp"},
    ]  # fmt: skip
    mounts: list[dict[str, Any]] = [{"name": "scratch", "mountPath": WORKDIR},
                                    {"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [
        {"name": "scratch", "emptyDir": {"sizeLimit": scratch}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    if ca_secret:  # only the CA certificate of that Secret, never its key
        mounts.append({"name": "ca", "mountPath": CA_DIR, "readOnly": True})
        volumes.append({"name": "ca", "secret": {
            "secretName": ca_secret[0], "defaultMode": 0o444,
            "items": [{"key": ca_secret[1], "path": CA_FILE_NAME}]}})
    labels = dict(labels or BACKUP_LABELS)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "schedule": schedule.strip(),
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "backoffLimit": 1,
                    "activeDeadlineSeconds": 6 * 3600,
                    "ttlSecondsAfterFinished": 7 * 86400,
                    "template": {
                        "metadata": {"labels": dict(labels)},
                        "spec": {
                            "restartPolicy": "Never",
                            "automountServiceAccountToken": False,
                            "enableServiceLinks": False,
                            "securityContext": {
                                "runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999,
                                "fsGroup": 999, "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [{
                                "name": "backup",
                                "image": image,
                                "args": BACKUP_ARGS,
                                "env": env,
                                "volumeMounts": mounts,
                                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                              "limits": {"memory": "512Mi"}},
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }],
                            "volumes": volumes,
                        },
                    },
                },
            },
        },
    }


def _retention_days(retention: str) -> int:
    """CloudNativePG's retention (30d, 4w, 3m) in days."""
    m = re.fullmatch(r"(\d+)([dwm])", retention)
    if not m:
        raise BackupInputError(f"retention {retention!r} is not like 30d, 4w or 3m")
    return int(m.group(1)) * {"d": 1, "w": 7, "m": 30}[m.group(2)]


def kubernetes_cronjob(spec: Any, *, image: str, region: str = DEFAULT_REGION,
                       schedule: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The CronJob of the StatefulSet flavor, from the Kubernetes recipe's ``Spec``: the same
    object-store settings (``spec.backup``: destination, endpoint, retention; the
    ``postgres-backup-s3`` Secret) as CloudNativePG's ObjectStore, logical dumps under
    ``<destination>/logical``; ``openfga_readonly``'s password from the ``postgres-roles``
    Secret; PostgreSQL's CA (only ``ca.crt``) from ``postgres-tls`` (sslmode=verify-ca);
    labels the PostgreSQL NetworkPolicy admits (component ``backup``)."""
    from . import kubernetes as k8s

    if spec.flavor != "statefulset":
        raise BackupInputError(
            "the CloudNativePG flavor backs up with its ScheduledBackup and ObjectStore "
            "(base backups and WAL, point-in-time recovery): no CronJob"
        )
    dest = urlsplit(spec.backup.destination)
    if dest.scheme != "s3" or not dest.netloc:
        raise BackupInputError(
            f"backup destination {spec.backup.destination!r}: the StatefulSet flavor's logical "
            "backups need s3://bucket/path"
        )
    where = ObjectStore(
        endpoint=spec.backup.endpoint_url or f"https://s3.{region}.amazonaws.com",
        bucket=dest.netloc, prefix="/".join(p for p in (dest.path.strip("/"), "logical") if p),
        region=region,
    )  # fmt: skip
    db = Database(host=k8s.postgres_host(spec), port=pgconf.PORT,
                  database=spec.names.database, user=spec.names.readonly,
                  sslmode="verify-ca", sslrootcert=f"{CA_DIR}/{CA_FILE_NAME}")  # fmt: skip
    access_key, secret_key = k8s.SECRET_NAMES[k8s.BACKUP_S3_SECRET]
    days = _retention_days(spec.backup.retention)
    cron = schedule or " ".join(spec.backup.schedule.split()[1:])  # CNPG's has seconds first
    return cronjob(
        image=image, namespace=spec.namespace, db=db, where=where, schedule=cron,
        keep=days, max_age_days=days, name=f"{k8s.POSTGRES}-backup",
        password_secret=(k8s.POSTGRES_ROLES_SECRET, k8s.ROLE_PASSWORD_KEY["readonly"]),
        s3_secret=(k8s.BACKUP_S3_SECRET, access_key, secret_key),
        ca_secret=(k8s.POSTGRES_TLS_SECRET, "ca.crt"),
        labels=k8s.labels(spec, f"{k8s.POSTGRES}-backup", "backup"),
    )


def with_kubernetes_backup(spec: Any, *, image: str, region: str = DEFAULT_REGION) -> Any:
    """``spec`` with the backup CronJob among its PostgreSQL objects (StatefulSet flavor)."""
    import dataclasses

    job = kubernetes_cronjob(spec, image=image, region=region)
    return dataclasses.replace(spec, postgres_extra=(*spec.postgres_extra, job))


def kraftcloud_backup_instance(
    *,
    image: str,
    db: Database,
    where: ObjectStore,
    name: str = "openfga-backup",
    memory_mib: int = 512,
    keep: int = DEFAULT_KEEP,
    max_age_days: int | None = None,
) -> dict[str, Any]:
    """A one-shot KraftCloud instance that takes one backup and stops, as plain data for the
    KraftCloud deploy: ``body`` is the instance-create request without secrets (the shape of
    the deploy's migrate one-shot: restart never, no service, so private only); the deployer
    adds the variables named in ``secret_env`` from its secrets, waits for ``stopped``, reads
    the exit code, prints the redacted log and deletes the instance (KraftCloud has no
    secret store, and GET on an instance returns its env). PostgreSQL is reached as
    ``<name>.internal`` over TLS (sslmode=require, as the deploy's own URIs)."""
    check_image(image)
    if not db.host.endswith(".internal"):
        raise BackupInputError(
            f"PostgreSQL host {db.host!r}: on KraftCloud reach it by its private name "
            "<instance>.internal (private IPs change on every redeploy)"
        )
    if db.sslmode in ("", "disable", "allow", "prefer"):
        db = Database(host=db.host, port=db.port, database=db.database, user=db.user,
                      sslmode="require", sslrootcert=db.sslrootcert)  # fmt: skip
    check_retention(keep, max_age_days)
    return {
        "body": {
            "name": name,
            "image": image,
            "args": BACKUP_ARGS,
            "memory_mb": memory_mib,
            "autostart": True,
            "restart_policy": "never",
            "env": {**job_env(db, where, keep=keep, max_age_days=max_age_days),
                    "BACKUP_WORKDIR": "/tmp", "HOME": "/tmp"},
        },
        "secret_env": list(SECRET_ENV),
        "wait_for": "stopped",
        "then": "read the exit code, print the redacted log, delete the instance",
    }


# ------------------------------------------------------------------ CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m openfga_release.recipes.backup",
        description="Back up OpenFGA's PostgreSQL to S3-compatible storage, list, verify and "
        f"restore. Secrets only from the environment: {', '.join(SECRET_ENV)}.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser, db: bool = True) -> None:
        e = os.environ.get
        sp.add_argument("--from-env", action="store_true",
                        help="take every unset option from BACKUP_* variables (jobs)")
        sp.add_argument("--endpoint", default=None, help="S3 endpoint URL (BACKUP_S3_ENDPOINT)")
        sp.add_argument("--bucket", default=None)
        sp.add_argument("--prefix", default=None)
        sp.add_argument("--region", default=None)
        sp.add_argument("--ca-file", default=None, help="CA bundle for the S3 endpoint")
        sp.add_argument("--pg-bin", default=e("BACKUP_PG_BIN"), help="PostgreSQL client bindir")
        sp.add_argument("--workdir", default=None)
        if db:
            sp.add_argument("--host", default=None)
            sp.add_argument("--port", type=int, default=None)
            sp.add_argument("--database", default=None)
            sp.add_argument("--user", default=None)
            sp.add_argument("--sslmode", default=None)
            sp.add_argument("--sslrootcert", default=None)

    b = sub.add_parser("backup", help="dump as the read-only role, upload, apply retention")
    common(b)
    b.add_argument("--keep", type=int, default=None, help=f"newest backups kept ({DEFAULT_KEEP})")
    b.add_argument("--max-age-days", type=int, default=None)
    b.add_argument("--lock-wait-timeout", type=int, default=LOCK_WAIT_TIMEOUT, metavar="SECONDS",
                   help="give up when a table stays locked this long (a migration running)")
    r = sub.add_parser("restore", help="verify a backup, restore it as the migrator/owner")
    common(r)
    r.add_argument("--owner", default=pgconf.DEFAULT_ROLES["owner"])
    r.add_argument("--backup", default=LATEST, help="a backup name, or latest")
    r.add_argument("--source-database", default=None,
                   help="whose backups 'latest' picks (default: the target database)")
    r.add_argument("--overwrite", default=None, metavar="DATABASE",
                   help="replace a non-empty target: repeat the target database's name")
    ls = sub.add_parser("list", help="the backups under the prefix")
    common(ls, db=False)
    v = sub.add_parser("verify", help="download a backup and check it whole (no database)")
    common(v, db=False)
    v.add_argument("--backup", default=LATEST)
    v.add_argument("--database", default=pgconf.DEFAULT_DATABASE)
    return p


def _opt(args: argparse.Namespace, name: str, env_name: str, default: Any = None) -> Any:
    value = getattr(args, name, None)
    if value is None and args.from_env:
        value = os.environ.get(env_name)
    return default if value in (None, "") else value


def _store_from(args: argparse.Namespace) -> ObjectStore:
    endpoint = _opt(args, "endpoint", "BACKUP_S3_ENDPOINT")
    bucket = _opt(args, "bucket", "BACKUP_S3_BUCKET")
    if not endpoint or not bucket:
        raise BackupInputError("--endpoint and --bucket are required (or BACKUP_S3_ENDPOINT and "
                               "BACKUP_S3_BUCKET with --from-env)")  # fmt: skip
    return ObjectStore(endpoint=endpoint, bucket=bucket,
                       prefix=_opt(args, "prefix", "BACKUP_S3_PREFIX", ""),
                       region=_opt(args, "region", "BACKUP_S3_REGION", DEFAULT_REGION),
                       ca_file=_opt(args, "ca_file", "BACKUP_S3_CA_FILE"))  # fmt: skip


def _db_from(args: argparse.Namespace, default_user: str) -> Database:
    host = _opt(args, "host", "BACKUP_PG_HOST")
    if not host:
        raise BackupInputError("--host is required (or BACKUP_PG_HOST with --from-env)")
    try:
        port = int(_opt(args, "port", "BACKUP_PG_PORT", pgconf.PORT))
    except ValueError:
        raise BackupInputError("the PostgreSQL port is not a number") from None
    return Database(host=host, port=port,
                    database=_opt(args, "database", "BACKUP_PG_DATABASE",
                                  pgconf.DEFAULT_DATABASE),
                    user=_opt(args, "user", "BACKUP_PG_USER", default_user),
                    sslmode=_opt(args, "sslmode", "BACKUP_PG_SSLMODE", ""),
                    sslrootcert=_opt(args, "sslrootcert", "BACKUP_PG_SSLROOTCERT"))  # fmt: skip


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None,
         out: IO[str] | None = None) -> int:  # fmt: skip
    env = os.environ if env is None else env
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        where = _store_from(args)
        workdir = _opt(args, "workdir", "BACKUP_WORKDIR")
        if args.command == "backup":
            keep = int(_opt(args, "keep", "BACKUP_KEEP", DEFAULT_KEEP))
            age = _opt(args, "max_age_days", "BACKUP_MAX_AGE_DAYS")
            result: Any = backup(
                _db_from(args, pgconf.DEFAULT_ROLES["readonly"]), where, env, keep=keep,
                max_age_days=None if age is None else int(age), bindir=args.pg_bin,
                workdir=workdir, lock_wait_timeout=args.lock_wait_timeout,
            )
        elif args.command == "restore":
            result = restore(
                _db_from(args, pgconf.DEFAULT_ROLES["migrator"]), where, env, owner=args.owner,
                backup_name_=args.backup, source_database=args.source_database,
                overwrite=args.overwrite, bindir=args.pg_bin, workdir=workdir,
            )
        elif args.command == "list":
            result = [{"backup": b.name, "database": b.database, "time": b.time.isoformat(),
                       "complete": b.complete} for b in Store(where, env).backups()]  # fmt: skip
        else:
            store = Store(where, env)
            ref = choose(store.backups(), args.database, args.backup)
            with tempfile.TemporaryDirectory(prefix="openfga-verify-", dir=workdir) as tmp:
                manifest, _, _ = fetch_verified(store, ref, Path(tmp), args.pg_bin)
            result = {"verified": ref.name, "sha256": manifest.sha256, "size": manifest.size,
                      "schema_revision": manifest.schema_revision, "tables": manifest.tables}
    except InputError as err:
        print(f"error: {_redact(str(err), env)}", file=sys.stderr)
        return 2
    except StepError as err:
        print(f"error: {_redact(str(err), env)}", file=sys.stderr)
        if err.detail:
            print(_redact(err.detail, env), file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
