"""What a KraftCloud deploy wants, and the plan from what is there to that.

Plain module, no SDK import: the plan is data (request bodies as dicts shaped
like the unikraft-cloud request models), so a dry run, the unit tests and the
real deploy all read the same decisions.

Resources, all named from one prefix (``--name``, default ``openfga``):

* volume ``<name>-pgdata``: created if missing, never deleted by the deploy;
* PostgreSQL ``<name>-postgres``: private only (no service group, so no public
  port), reached as ``<name>-postgres.internal``, PGDATA on the volume
  (``/volume/postgres``, set in its Kraftfile). The role passwords are in its
  env only on the first boot (when the deploy created the volume); once the
  database is initialised it is redeployed without them;
* migrations ``<name>-migrate-<rev>``: a one-shot instance of the OpenFGA
  image, ``restart_policy: never``, argv ``openfga migrate``, on the private
  network;
* OpenFGA ``<name>-<rev>``: the server as ``openfga_app``, preshared keys,
  playground off, in the service group ``<name>`` (created once: a stable
  public name, 443 -> 8080 with TLS), scale-to-zero per the options;
* on an upgrade, the canary ``<name>-<rev>-canary`` (see deploy.py).

``rev`` is a short hash of the OpenFGA image reference and the non-secret
server settings: the same inputs keep the running instance, new ones upgrade.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import backup as bk
from ..dsn import Dsn
from ..errors import InputError
from ..migrate import migrate_command
from ..openfga import HTTP_PORT, PRESHARED_KEYS_ENV, server_env
from ..postgres import PASSWORD_ENV, PORT, VOLUME, Names
from ..server_tuning import MIN_MEMORY_MIB

BINARY = "/usr/bin/openfga"  # inside the OpenFGA rootfs (kraftfiles/openfga)
TAG_APP = "openfga-release"
PUBLIC_PORT = 443
DRAIN_TIMEOUT_MS = 5000
# OpenFGA instances that can run at once, sharing PostgreSQL's connections: the app and
# its canary (or its replacement) during an upgrade.
OPENFGA_AT_ONCE = 2
_NAME_RE = re.compile(r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$")
_DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}$")


class KraftCloudInputError(InputError):
    """A deploy argument that cannot be right."""


@dataclass(frozen=True)
class Spec:
    """Everything the deploy needs except secrets."""

    openfga_image: str
    postgres_image: str
    name: str = "openfga"
    volume_size_mb: int = 1024
    postgres_memory_mb: int = 1024
    openfga_memory_mb: int = 512
    domain: str = ""  # a custom domain for the service group; "" = the platform's FQDN
    scale_to_zero: str = "idle"  # off | on | idle
    cooldown_ms: int = 1000
    migrate_timeout_s: int = 30  # how long `openfga migrate` keeps trying to reach the database
    names: Names = field(default_factory=Names)
    allow_tags: bool = False  # tests use tags; a release passes digest references

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise KraftCloudInputError(
                f"--name {self.name!r} must be a DNS label of at most 40 characters "
                "(a-z, 0-9, '-'), e.g. openfga: instance names derive from it")
        for what, ref in (("openfga", self.openfga_image), ("postgres", self.postgres_image)):
            if not ref or (not self.allow_tags and not _DIGEST_RE.search(ref)):
                raise KraftCloudInputError(
                    f"the {what} image {ref!r} is not pinned by digest: pass the reference "
                    "`dagger call kraftcloud ... package` returned (…@sha256:<64 hex>)")
        if self.scale_to_zero not in ("off", "on", "idle"):
            raise KraftCloudInputError("--scale-to-zero must be off, on or idle")
        if self.postgres_memory_mb < 256 or self.openfga_memory_mb < MIN_MEMORY_MIB:
            raise KraftCloudInputError(
                f"memory too small: PostgreSQL needs at least 256 MiB, OpenFGA {MIN_MEMORY_MIB} "
                "MiB (512 is the tested default)")

    # ------------------------------------------------------------ names
    @property
    def volume(self) -> str:
        return f"{self.name}-pgdata"

    @property
    def postgres(self) -> str:
        return f"{self.name}-postgres"

    @property
    def postgres_host(self) -> str:
        return f"{self.postgres}.internal"

    @property
    def service_group(self) -> str:
        return self.name

    @property
    def rev(self) -> str:
        settings = json.dumps({"image": self.openfga_image, "env": self.openfga_env(),
                               "memory": self.openfga_memory_mb,
                               "s2z": [self.scale_to_zero, self.cooldown_ms]}, sort_keys=True)
        return hashlib.sha256(settings.encode()).hexdigest()[:8]

    @property
    def app(self) -> str:
        return f"{self.name}-{self.rev}"

    @property
    def canary(self) -> str:
        return f"{self.app}-canary"

    @property
    def migrate(self) -> str:
        return f"{self.name}-migrate-{self.rev}"

    def tags(self, role: str) -> list[str]:
        return [TAG_APP, f"{TAG_APP}.name={self.name}", f"{TAG_APP}.role={role}"]

    # ------------------------------------------------------------ bodies
    def dsn(self, role: str, password: str) -> Dsn:
        return Dsn(host=self.postgres_host, port=PORT, database=self.names.database,
                   user=self.names.role(role), password=password, sslmode="require")

    def postgres_body(self, first_boot_passwords: Mapping[str, str] | None) -> dict[str, Any]:
        env = dict(self.names.env())
        if first_boot_passwords:
            env.update({PASSWORD_ENV[k]: v for k, v in first_boot_passwords.items()})
        return {
            "name": self.postgres, "image": self.postgres_image,
            "hostname": self.postgres,  # the private name: <hostname>.internal, stable
            "memory_mb": self.postgres_memory_mb, "autostart": True,
            "restart_policy": "on-failure", "env": env,
            "volumes": [{"name": self.volume, "at": VOLUME}],
            "tags": self.tags("postgres"),
        }

    def migrate_body(self, migrator_password: str) -> dict[str, Any]:
        return {
            "name": self.migrate, "image": self.openfga_image,
            "args": migrate_command(binary=BINARY, connect_timeout=self.migrate_timeout_s),
            "memory_mb": self.openfga_memory_mb,
            "autostart": True, "restart_policy": "never",
            "env": {"OPENFGA_DATASTORE_ENGINE": "postgres",
                    "OPENFGA_DATASTORE_URI": self.dsn("migrator", migrator_password).secret_uri()},
            "tags": self.tags("migrate"),
        }

    def services(self) -> list[dict[str, Any]]:
        return [{"port": PUBLIC_PORT, "destination_port": HTTP_PORT,
                 "handlers": ["tls", "http"]}]

    def openfga_env(self) -> dict[str, str]:
        """The shipped server settings for this instance size, its pool sized for every
        OpenFGA instance that can run at once."""
        return server_env(replicas=OPENFGA_AT_ONCE, memory_mib=self.openfga_memory_mb)

    def service_group_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.service_group, "services": self.services()}
        if self.domain:
            body["domains"] = [{"name": self.domain}]
        return body

    def app_body(self, app_password: str, preshared_keys: str, *, canary: bool = False
                 ) -> dict[str, Any]:
        env = {**self.openfga_env(),
               "OPENFGA_DATASTORE_URI": self.dsn("app", app_password).secret_uri(),
               PRESHARED_KEYS_ENV: preshared_keys}
        body: dict[str, Any] = {
            "name": self.canary if canary else self.app, "image": self.openfga_image,
            "args": [BINARY, "run"], "memory_mb": self.openfga_memory_mb,
            "autostart": True, "restart_policy": "on-failure", "env": env,
            "tags": self.tags("canary" if canary else "openfga"),
        }
        if canary:  # an ephemeral service group of its own: its own FQDN, gone with it
            body["service_group"] = {"services": self.services()}
        else:
            body["service_group"] = {"name": self.service_group}
            if self.scale_to_zero != "off":
                body["scale_to_zero"] = {"policy": self.scale_to_zero, "stateful": False,
                                         "cooldown_time_ms": self.cooldown_ms}
        return body


# Where the deploy program reads the backup's S3 credentials (set from Dagger secrets); the
# read-only role's password comes from POSTGRES_READONLY_PASSWORD like the deploy's.
BACKUP_SECRET_ENV = {"readonly": PASSWORD_ENV["readonly"],
                     "s3_access_key": "BACKUP_S3_ACCESS_KEY_ID",
                     "s3_secret_key": "BACKUP_S3_SECRET_ACCESS_KEY"}
# The backup CLI's variable (recipes.backup.SECRET_ENV) -> the key above holding its value.
BACKUP_INSTANCE_ENV = {bk.PASSWORD_ENV: "readonly", bk.ACCESS_KEY_ENV: "s3_access_key",
                       bk.SECRET_KEY_ENV: "s3_secret_key"}
BACKUP_TIMEOUT_S = 1800


@dataclass(frozen=True)
class BackupJob:
    """The one-shot backup on the private network (no secrets): ``<name>-backup`` runs
    ``recipes.backup backup`` as the read-only role against ``<name>-postgres.internal``."""

    name: str
    image: str
    endpoint: str
    bucket: str
    prefix: str = ""
    region: str = bk.DEFAULT_REGION
    keep: int = bk.DEFAULT_KEEP
    max_age_days: int | None = None
    memory_mb: int = 512
    timeout_s: int = BACKUP_TIMEOUT_S
    names: Names = field(default_factory=Names)
    allow_tags: bool = False  # tests use tags; a release passes the image by digest

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise KraftCloudInputError(
                f"--name {self.name!r} must be the deploy's name (a DNS label of at most 40 "
                "characters, e.g. openfga): the backup reaches <name>-postgres.internal")
        if not self.image or (not self.allow_tags and not _DIGEST_RE.search(self.image)):
            raise KraftCloudInputError(
                f"the backup image {self.image!r} is not pinned by digest: pass it as "
                "…@sha256:<64 hex> so every run uses the same client tools")
        if self.memory_mb < 128 or self.timeout_s < 10:
            raise KraftCloudInputError("the backup needs at least 128 MiB and a timeout of at "
                                       "least 10 seconds")
        self.store()  # refuses a bad endpoint (credentials in the URL, plain http outside)
        bk.check_retention(self.keep, self.max_age_days)

    @property
    def instance(self) -> str:
        return f"{self.name}-backup"

    def store(self) -> bk.ObjectStore:
        return bk.ObjectStore(endpoint=self.endpoint, bucket=self.bucket, prefix=self.prefix,
                              region=self.region)

    def tags(self) -> list[str]:
        return [TAG_APP, f"{TAG_APP}.name={self.name}", f"{TAG_APP}.role=backup"]

    def body(self, secrets: Mapping[str, str]) -> dict[str, Any]:
        """The instance-create body: recipes.backup's one-shot plus the tool's tags, and the
        secrets (``readonly``, ``s3_access_key``, ``s3_secret_key``) only in its env."""
        db = bk.Database(host=f"{self.name}-postgres.internal", database=self.names.database,
                         user=self.names.readonly, sslmode="require")
        job = bk.kraftcloud_backup_instance(
            image=self.image, db=db, where=self.store(), name=self.instance,
            memory_mib=self.memory_mb, keep=self.keep, max_age_days=self.max_age_days)
        missing = [BACKUP_SECRET_ENV[BACKUP_INSTANCE_ENV[v]] for v in job["secret_env"]
                   if not secrets.get(BACKUP_INSTANCE_ENV[v])]
        if missing:
            raise KraftCloudInputError(
                f"missing secret(s) {', '.join(missing)}: the backup needs the read-only "
                "role's password and the S3 credentials as Dagger secrets")
        body = dict(job["body"])
        body["env"] = {**body["env"], **{v: secrets[BACKUP_INSTANCE_ENV[v]]
                                         for v in job["secret_env"]}}
        body["tags"] = self.tags()
        return body

    def cli_args(self) -> list[str]:
        args = ["--name", self.name, "--backup-image", self.image, "--s3-endpoint",
                self.endpoint, "--s3-bucket", self.bucket, "--s3-prefix", self.prefix,
                "--s3-region", self.region, "--keep", str(self.keep),
                "--backup-memory-mb", str(self.memory_mb),
                "--backup-timeout-s", str(self.timeout_s)]
        if self.max_age_days is not None:
            args += ["--max-age-days", str(self.max_age_days)]
        return args


# ---------------------------------------------------------------- state and plan


@dataclass(frozen=True)
class Seen:
    """One instance as read from the platform (env never kept: it holds secrets)."""

    name: str
    uuid: str
    state: str
    image: str
    tags: tuple[str, ...] = ()
    service_group: str = ""


@dataclass(frozen=True)
class State:
    instances: tuple[Seen, ...] = ()
    volumes: tuple[str, ...] = ()
    service_groups: Mapping[str, str] = field(default_factory=dict)  # name -> fqdn

    def instance(self, name: str) -> Seen | None:
        return next((i for i in self.instances if i.name == name), None)

    def role(self, spec: Spec, role: str) -> list[Seen]:
        want = {f"{TAG_APP}.name={spec.name}", f"{TAG_APP}.role={role}"}
        return [i for i in self.instances if want <= set(i.tags)]


@dataclass(frozen=True)
class Action:
    verb: str  # create | update | keep | run | start | remove
    kind: str  # volume | postgres | service-group | migrate | openfga | canary
    name: str
    why: str

    def line(self) -> str:
        return f"{self.verb:<7} {self.kind:<13} {self.name}: {self.why}"


def plan(spec: Spec, state: State) -> list[Action]:
    """The ordered actions a deploy takes from ``state``; a dry run prints them."""
    acts: list[Action] = []
    new_volume = spec.volume not in state.volumes
    acts.append(Action("create" if new_volume else "keep", "volume", spec.volume,
                       "missing" if new_volume else "exists (never deleted)"))
    pg = state.instance(spec.postgres)
    if pg is None:
        why = ("first boot with the role passwords, then redeployed without them" if new_volume
               else "missing; the database on the volume is kept, no passwords needed")
        acts.append(Action("create", "postgres", spec.postgres, why))
    elif pg.image != spec.postgres_image:
        acts.append(Action("update", "postgres", spec.postgres,
                           f"image {pg.image} -> {spec.postgres_image}: replaced on the same "
                           "volume (brief database downtime)"))
    elif pg.state != "running":
        acts.append(Action("start", "postgres", spec.postgres, f"was {pg.state}"))
    else:
        acts.append(Action("keep", "postgres", spec.postgres, "running, same image"))
    has_group = spec.service_group in state.service_groups
    acts.append(Action("keep" if has_group else "create", "service-group", spec.service_group,
                       "exists" if has_group else "443 -> 8080 (TLS), created once"))
    current = state.role(spec, "openfga")
    same = [i for i in current if i.name == spec.app]
    if same and same[0].state in ("running", "standby"):
        acts.append(Action("keep", "openfga", spec.app, "running this image and settings"))
        for old in current:
            if old.name != spec.app:
                acts.append(Action("remove", "openfga", old.name, "left from an earlier deploy"))
        return acts
    acts.append(Action("run", "migrate", spec.migrate,
                       "one-shot `openfga migrate`, removed after it stopped"))
    if current:
        acts.append(Action("run", "canary", spec.canary,
                           "new version checked on its own name before it joins"))
    acts.append(Action("create", "openfga", spec.app, f"joins {spec.service_group}"))
    for old in current:
        acts.append(Action("remove", "openfga", old.name,
                           "drained and removed once the new one serves"))
    return acts


def secrets_from_env(env: Mapping[str, str], *, need: Sequence[str]) -> dict[str, str]:
    """The secrets the deploy reads from its environment (set from Dagger secrets)."""
    found = {k: env.get(v, "") for k, v in {**PASSWORD_ENV, "keys": "FGA_PRESHARED_KEYS"}.items()}
    missing = [k for k in need if not found.get(k)]
    if missing:
        variables = [PASSWORD_ENV.get(k, "FGA_PRESHARED_KEYS") for k in missing]
        raise KraftCloudInputError(
            f"missing secret(s) {', '.join(variables)}: pass them as Dagger secrets "
            "(--migrator-password env://..., ...); they are never read from arguments")
    return {k: v for k, v in found.items() if v}
