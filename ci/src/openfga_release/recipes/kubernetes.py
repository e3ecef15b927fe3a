"""Kubernetes objects for OpenFGA on PostgreSQL, rendered from the project's own sources.

Plain module (no dagger import). :func:`render` turns a :class:`Spec` (images by digest,
namespace, flavor, sizes) into three kustomize bases, each a list of objects:

- ``postgres-statefulset``: a plain StatefulSet running ``images/postgres/openfga-postgres.sh``
  with ``images/postgres``'s config and init SQL (mounted from a ConfigMap built from those very
  files, ``memory.conf`` sized by :func:`recipes.postgres.size_memory` for the container's memory
  limit), or
- ``postgres-cnpg``: a CloudNativePG ``Cluster`` whose parameters are ``postgresql.conf``'s minus
  those the operator owns, whose roles are the four of ``10-openfga.sql`` (the same statements,
  made plain SQL by :func:`cnpg_init_sql`), plus a Pooler, a PodMonitor, a Barman Cloud
  ``ObjectStore`` and a ``ScheduledBackup``;
- ``openfga``: the migration Job of this OpenFGA version, then the server Deployment.

Nothing here orders or waits: the deploy (``recipes/kubedeploy.py``) applies these in order.
Applied all at once (``kubectl apply -k``) they still converge without a deadlock: no hook, no
init container waits on anything; ``openfga migrate`` retries its connection and the Job retries
a bounded number of times, and the server's readiness (gRPC health) is NOT_SERVING until the
schema is there, so the rollout completes once the Job has.

Secrets are referenced by name, never rendered (:data:`SECRET_NAMES` lists them and their keys;
the deploy creates them from Dagger secrets, a ``kubectl apply -k`` user beforehand).

Render the committed bases (``manifests/``)::

    python -m openfga_release.recipes.kubernetes render --out manifests
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import migrate as mig
from . import openfga as fga
from . import postgres as pg
from . import refs
from . import server_tuning as tuning
from .errors import InputError
from .image import USER as OPENFGA_USER
from .releases import DEFAULT_VERSION, check_version_format

Obj = dict[str, Any]

FLAVORS = ("statefulset", "cnpg")
FIELD_MANAGER = "openfga-release"
DEFAULT_NAMESPACE = "openfga"
PART_OF = "openfga"
# Base names: the directories of manifests/ and the keys of render().
POSTGRES_BASE = {"statefulset": "postgres-statefulset", "cnpg": "postgres-cnpg"}
OPENFGA_BASE = "openfga"

# Object names.
POSTGRES = "postgres"  # StatefulSet/Service, or the CNPG Cluster
POSTGRES_HEADLESS = "postgres-headless"
POSTGRES_CONFIG = "postgres-config"
POSTGRES_INITDB = "postgres-initdb"
POOLER = "postgres-pooler-rw"
OBJECT_STORE = "postgres-backups"
OPENFGA = "openfga"
# Secrets: name -> the keys they hold. Created by the deploy (or by hand), never rendered.
POSTGRES_TLS_SECRET = "postgres-tls"  # noqa: S105 (kubernetes.io/tls: tls.crt, tls.key, ca.crt)
POSTGRES_ROLES_SECRET = "postgres-roles"  # noqa: S105 (a name)
ROLE_SECRET = {kind: f"postgres-{kind}-credentials" for kind in pg.PASSWORD_ENV}  # CNPG basic-auth
BACKUP_S3_SECRET = "postgres-backup-s3"  # noqa: S105 (a name)
DATASTORE_SECRET = "openfga-datastore"  # noqa: S105 (a name): uri of the app role
MIGRATOR_DATASTORE_SECRET = "openfga-migrator-datastore"  # noqa: S105 (a name)
PRESHARED_KEYS_SECRET = "openfga-preshared-keys"  # noqa: S105 (a name)
URI_KEY = "uri"
KEYS_KEY = "keys"
ROLE_PASSWORD_KEY = {kind: f"{kind}-password" for kind in pg.PASSWORD_ENV}
SECRET_NAMES: dict[str, tuple[str, ...]] = {
    POSTGRES_TLS_SECRET: ("tls.crt", "tls.key", "ca.crt"),
    POSTGRES_ROLES_SECRET: tuple(ROLE_PASSWORD_KEY.values()),
    **{name: ("username", "password") for name in ROLE_SECRET.values()},
    BACKUP_S3_SECRET: ("ACCESS_KEY_ID", "ACCESS_SECRET_KEY"),
    DATASTORE_SECRET: (URI_KEY,),
    MIGRATOR_DATASTORE_SECRET: (URI_KEY,),
    PRESHARED_KEYS_SECRET: (KEYS_KEY,),
}

# Who may reach PostgreSQL's port: pods of this release with one of these components.
COMPONENT_LABEL = "app.kubernetes.io/component"
POSTGRES_CLIENTS = ("server", "migrate", "backup")

# The Debian postgres image's postgres user (uid/gid 999): fsGroup and runAsUser.
POSTGRES_UID = 999
TLS_MOUNT_MODE = 0o440  # root:999 (fsGroup), group-read: PostgreSQL accepts 0640-or-less for root
SECRET_MOUNT_MODE = 0o440
SHM_SIZE = "256Mi"
RUN_DIR = "/var/run/postgresql"

# Upstream's images, for the committed bases (kustomize `images:` pins them; the pipeline
# renders its own published digests instead).
UPSTREAM_OPENFGA_IMAGE = "docker.io/openfga/openfga"
IMAGE_PLACEHOLDER = {"openfga": "openfga", "postgres": "postgres"}

# CloudNativePG
CNPG_API = "postgresql.cnpg.io/v1"
BARMAN_API = "barmancloud.cnpg.io/v1"
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
CNPG_INSTANCES = 3
# Parameters CloudNativePG sets itself and refuses from a user (its FixedConfigurationParameters,
# "fixed" or "blocked"), restricted to those postgresql.conf sets: it owns listening, sockets,
# TLS files and protocol, logging to its collector, and the preloaded libraries (it adds
# pg_stat_statements itself when a pg_stat_statements.* parameter is given).
CNPG_OWNED_PARAMETERS = frozenset((
    "listen_addresses", "port", "unix_socket_directories", "unix_socket_permissions",
    "unix_socket_group", "ssl", "ssl_min_protocol_version", "ssl_max_protocol_version",
    "ssl_prefer_server_ciphers", "ssl_ciphers", "ssl_cert_file", "ssl_key_file", "ssl_ca_file",
    "logging_collector", "log_destination", "log_directory", "log_filename",
    "shared_preload_libraries", "hba_file", "ident_file", "config_file", "data_directory",
    "archive_mode", "archive_command", "wal_level", "hot_standby", "cluster_name",
))  # fmt: skip
DEFAULT_BACKUP_SCHEDULE = "0 0 3 * * *"  # CNPG's cron has a seconds field: 03:00:00 daily
DEFAULT_RETENTION = "30d"

MAX_SURGE = 1  # the Deployment's rollout: one extra server, none taken away

# Migration Job bounds: openfga migrate's own bound on the whole run, plus the retries.
MIGRATE_BACKOFF_LIMIT = 2
MIGRATE_DEADLINE = mig.RUN_TIMEOUT + 120


class KubernetesInputError(InputError):
    """An argument the manifests cannot be rendered from; the message says the fix."""


# ------------------------------------------------------------------- inputs

_QUANTITY = re.compile(r"^(\d+(\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_quantity(label: str, value: str) -> str:
    if not _QUANTITY.match(value):
        raise KubernetesInputError(
            f"{label} {value!r} is not a Kubernetes quantity: write it like 500m, 1, 512Mi or 10Gi"
        )
    return value


def quantity_mib(value: str) -> int:
    """A memory quantity in MiB (1Gi -> 1024, 512Mi -> 512, 1G -> 953)."""
    m = _QUANTITY.match(value)
    if not m:
        raise KubernetesInputError(f"memory {value!r} is not a quantity such as 1Gi")
    number = float(m.group(1))
    factor = {None: 1 / 2**20, "Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 2**20,
              "k": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20, "T": 1e12 / 2**20}
    if m.group(3) == "m":
        raise KubernetesInputError(f"memory {value!r} is in millibytes: write it like 1Gi")
    return int(number * factor[m.group(3)])


def check_namespace(namespace: str) -> str:
    if not _DNS_LABEL.match(namespace):
        raise KubernetesInputError(
            f"namespace {namespace!r} is not a valid name: lowercase letters, digits and '-', "
            "at most 63 characters, starting and ending with a letter or digit"
        )
    return namespace


def check_flavor(flavor: str) -> str:
    if flavor not in FLAVORS:
        raise KubernetesInputError(
            f"flavor {flavor!r} is not known: use 'statefulset' (a plain StatefulSet) or "
            "'cnpg' (a CloudNativePG Cluster; the operator must be installed)"
        )
    return flavor


def check_digest_ref(what: str, ref: str) -> str:
    """An image for the cluster: by digest, so every node runs the same bytes."""
    image = refs.parse(ref)
    if image.digest is None:
        raise KubernetesInputError(
            f"{what} image {ref!r} has no digest: deploy images by digest "
            f"(name@sha256:<64 hex>, as publish returns them) so every node runs the same bytes"
        )
    return ref


@dataclass(frozen=True)
class Sizes:
    """Resources. PostgreSQL's memory limit is what ``memory.conf`` is sized for."""

    postgres_memory: str = "1Gi"
    postgres_cpu: str = "1"
    postgres_storage: str = "10Gi"
    max_connections: int = pg.DEFAULT_MAX_CONNECTIONS
    storage_class: str = ""  # "" : the cluster's default StorageClass
    openfga_replicas: int = 2
    openfga_memory: str = "512Mi"  # measured peak under load: 443 MiB (server_tuning.py)
    openfga_cpu: str = "500m"
    cnpg_instances: int = CNPG_INSTANCES

    def __post_init__(self) -> None:
        for name in ("postgres_memory", "postgres_cpu", "postgres_storage", "openfga_memory",
                     "openfga_cpu"):
            check_quantity(name.replace("_", "-"), getattr(self, name))
        if quantity_mib(self.openfga_memory) < tuning.MIN_MEMORY_MIB:
            raise KubernetesInputError(
                f"openfga-memory {self.openfga_memory} is below {tuning.MIN_MEMORY_MIB}Mi, less "
                "than OpenFGA needs: use 512Mi or more (measured peak under load: 443 MiB)"
            )
        if self.openfga_replicas < 2:
            raise KubernetesInputError(
                f"openfga-replicas {self.openfga_replicas} leaves no replica serving during a "
                "rollout or a node drain: use 2 or more"
            )
        if self.cnpg_instances < 1:
            raise KubernetesInputError("cnpg-instances must be 1 or more (3 is the default)")
        pg.size_memory(self.postgres_memory_mib, self.max_connections)  # refuses what cannot fit

    @property
    def postgres_memory_mib(self) -> int:
        return quantity_mib(self.postgres_memory)


@dataclass(frozen=True)
class Backup:
    """Where CloudNativePG's Barman Cloud plugin keeps base backups and WAL (S3-compatible)."""

    destination: str = "s3://openfga-backups/postgres"
    endpoint_url: str = ""  # "" : AWS S3
    schedule: str = DEFAULT_BACKUP_SCHEDULE
    retention: str = DEFAULT_RETENTION

    def __post_init__(self) -> None:
        if not re.match(r"^(s3|gs|https?)://\S+$", self.destination):
            raise KubernetesInputError(
                f"backup destination {self.destination!r} is not an object-store URL such as "
                "s3://bucket/path"
            )
        if len(self.schedule.split()) != 6:
            raise KubernetesInputError(
                f"backup schedule {self.schedule!r} needs six fields (CloudNativePG's cron starts "
                f"with seconds), for example {DEFAULT_BACKUP_SCHEDULE!r}"
            )
        if not re.match(r"^\d+[dwm]$", self.retention):
            raise KubernetesInputError(
                f"backup retention {self.retention!r} is not like 30d, 4w or 3m"
            )


@dataclass(frozen=True)
class Spec:
    """Everything the manifests depend on."""

    openfga_image: str
    postgres_image: str = pg.POSTGRES_IMAGE
    namespace: str = DEFAULT_NAMESPACE
    flavor: str = "statefulset"
    openfga_version: str = DEFAULT_VERSION
    sizes: Sizes = field(default_factory=Sizes)
    names: pg.Names = field(default_factory=pg.Names)
    backup: Backup = field(default_factory=Backup)
    cnpg_image: str = ""  # "" : the operator's default PostgreSQL image
    progress_deadline: int = 600  # seconds the Deployment may take before it counts as failed
    # Extra objects for the PostgreSQL base (the backups concern's CronJob, for example);
    # they get the namespace and the release labels like the others.
    postgres_extra: tuple[Obj, ...] = ()
    # The committed bases: placeholder image names that kustomize `images:` pins.
    placeholders: bool = False

    def __post_init__(self) -> None:
        check_namespace(self.namespace)
        check_flavor(self.flavor)
        check_version_format(self.openfga_version)
        if not self.placeholders:
            check_digest_ref("openfga", self.openfga_image)
            pg.check_image_pinned(self.postgres_image)
            if self.cnpg_image:
                check_digest_ref("cnpg postgres", self.cnpg_image)
        if self.progress_deadline < 10:
            raise KubernetesInputError("progress-deadline must be at least 10 seconds")
        for extra in self.postgres_extra:
            if not isinstance(extra, dict) or not {"apiVersion", "kind", "metadata"} <= set(extra):
                raise KubernetesInputError(
                    "an extra PostgreSQL object needs apiVersion, kind and metadata"
                )


# ---------------------------------------------------------------- sources

@dataclass(frozen=True)
class PostgresSources:
    """The files of ``images/postgres`` the manifests are made of (read, never copied by hand)."""

    config: Mapping[str, str]  # postgresql.conf, pg_hba.conf, pg_ident.conf
    init: Mapping[str, str]  # initdb.d files
    start_script: str

    @classmethod
    def read(cls, directory: Path) -> PostgresSources:
        missing = [n for n in (*pg.CONFIG_FILES, pg.START_SCRIPT) if not (directory / n).is_file()]
        missing += [f"initdb.d/{n}" for n in pg.INIT_FILES
                    if not (directory / "initdb.d" / n).is_file()]
        if missing:
            raise KubernetesInputError(
                f"{directory} is not images/postgres: {', '.join(missing)} missing; pass the "
                "repository's images/postgres directory"
            )
        return cls(
            config={n: (directory / n).read_text() for n in pg.CONFIG_FILES},
            init={n: (directory / "initdb.d" / n).read_text() for n in pg.INIT_FILES},
            start_script=(directory / pg.START_SCRIPT).read_text(),
        )


def parse_conf(text: str) -> dict[str, str]:
    """``name = value`` lines of a postgresql.conf (comments, includes dropped; quotes removed)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.strip().startswith("#") else ""
        if not line or line.startswith("include"):
            continue
        m = re.fullmatch(r"([A-Za-z_][\w.]*)\s*=?\s*(.*)", line)
        if not m:
            raise KubernetesInputError(f"postgresql.conf line {raw!r} does not parse")
        value = m.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1].replace("''", "'")
        out[m.group(1)] = value
    return out


# --------------------------------------------------------------- helpers

def labels(spec: Spec, name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": name,
        COMPONENT_LABEL: component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
    }


def selector(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, COMPONENT_LABEL: component}


def meta(spec: Spec, name: str, component: str, app: str, **extra: Any) -> Obj:
    return {"name": name, "namespace": spec.namespace, "labels": labels(spec, app, component),
            **extra}


def restricted_container_security(uid: int, gid: int) -> Obj:
    """The restricted Pod Security Standard, per container."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security(uid: int, gid: int, fs_group: int | None = None) -> Obj:
    out: Obj = {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if fs_group is not None:
        out["fsGroup"] = fs_group
        out["fsGroupChangePolicy"] = "OnRootMismatch"
    return out


def secret_env(name: str, secret: str, key: str) -> Obj:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def image(spec: Spec, which: str) -> str:
    if spec.placeholders:
        return IMAGE_PLACEHOLDER[which]
    return spec.openfga_image if which == "openfga" else spec.postgres_image


def _openfga_uid_gid() -> tuple[int, int]:
    uid, gid = OPENFGA_USER.split(":")
    return int(uid), int(gid)


def migrate_job_name(version: str, image_ref: str = "") -> str:
    """One Job per OpenFGA version: ``openfga-migrate-v1-22-1``, plus the first 10 hex digits
    of the image digest when there is one (``...-v1-22-1-3f2a9c0b1d``): a Job's pod template
    is immutable, so a rebuilt image of the same version gets its own (idempotent) Job
    instead of an apply error."""
    name = f"{OPENFGA}-migrate-" + re.sub(r"[^a-z0-9]+", "-", version.lower()).strip("-")
    digest = refs.parse(image_ref).digest if image_ref else None
    if digest:
        name += "-" + digest.split(":", 1)[1][:10]
    return name


def postgres_host(spec: Spec) -> str:
    """The Service OpenFGA reaches PostgreSQL at (read-write)."""
    service = POSTGRES if spec.flavor == "statefulset" else POOLER
    return f"{service}.{spec.namespace}.svc"


def migrate_host(spec: Spec) -> str:
    """Migrations go straight to the primary (DDL through a transaction pooler is unsafe)."""
    service = POSTGRES if spec.flavor == "statefulset" else f"{POSTGRES}-rw"
    return f"{service}.{spec.namespace}.svc"


# ------------------------------------------------------- PostgreSQL: StatefulSet

def postgres_statefulset_objects(spec: Spec, src: PostgresSources) -> list[Obj]:
    s = spec.sizes
    memory_conf = pg.render_memory_conf(s.postgres_memory_mib, s.max_connections)
    app, comp = POSTGRES, "database"
    sel = selector(app, comp)
    config_data = {**src.config, "memory.conf": memory_conf, pg.START_SCRIPT: src.start_script}
    env = [{"name": k, "value": v} for k, v in pg.IMAGE_ENV.items()]
    env += [{"name": k, "value": v} for k, v in spec.names.env().items()]
    env += [{"name": "POSTGRES_RUN_DIR", "value": RUN_DIR}]
    env += [{"name": f"{var}_FILE", "value": f"/etc/postgresql/roles/{ROLE_PASSWORD_KEY[kind]}"}
            for kind, var in pg.PASSWORD_ENV.items()]
    isready = ["pg_isready", "-q", "-h", RUN_DIR, "-p", str(pg.PORT), "-d", "postgres",
               "-U", "postgres"]
    container = {
        "name": "postgres",
        "image": image(spec, "postgres"),
        "command": ["/bin/sh", f"{pg.CONFIG_DIR}/{pg.START_SCRIPT}"],
        "env": env,
        "ports": [{"name": "postgres", "containerPort": pg.PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": s.postgres_cpu, "memory": s.postgres_memory},
            "limits": {"memory": s.postgres_memory},
        },
        "securityContext": restricted_container_security(POSTGRES_UID, POSTGRES_UID),
        # initdb and the init SQL run on first boot: up to 10 minutes before liveness applies.
        "startupProbe": {"exec": {"command": isready}, "periodSeconds": 5,
                         "timeoutSeconds": 5, "failureThreshold": 120},
        "readinessProbe": {"exec": {"command": isready}, "periodSeconds": 5,
                           "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"exec": {"command": isready}, "periodSeconds": 10,
                          "timeoutSeconds": 5, "failureThreshold": 6},
        "volumeMounts": [
            {"name": "data", "mountPath": pg.VOLUME},
            {"name": "config", "mountPath": pg.CONFIG_DIR, "readOnly": True},
            {"name": "initdb", "mountPath": pg.INITDB_DIR, "readOnly": True},
            {"name": "tls", "mountPath": pg.TLS_DIR, "readOnly": True},
            {"name": "roles", "mountPath": "/etc/postgresql/roles", "readOnly": True},
            {"name": "run", "mountPath": RUN_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
    }
    pod = {
        "metadata": {"labels": labels(spec, app, comp)},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": pod_security(POSTGRES_UID, POSTGRES_UID, fs_group=POSTGRES_UID),
            # A fast shutdown checkpoints; give it time before SIGKILL.
            "terminationGracePeriodSeconds": 60,
            "containers": [container],
            "volumes": [
                {"name": "config", "configMap": {"name": POSTGRES_CONFIG, "defaultMode": 0o444}},
                {"name": "initdb", "configMap": {
                    "name": POSTGRES_INITDB, "defaultMode": pg.INIT_FILE_MODE}},
                {"name": "tls", "secret": {
                    "secretName": POSTGRES_TLS_SECRET, "defaultMode": TLS_MOUNT_MODE,
                    "items": [{"key": "tls.crt", "path": pg.SERVER_CERT},
                              {"key": "tls.key", "path": pg.SERVER_KEY}]}},
                {"name": "roles", "secret": {
                    "secretName": POSTGRES_ROLES_SECRET, "defaultMode": SECRET_MOUNT_MODE}},
                {"name": "run", "emptyDir": {"sizeLimit": "16Mi"}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
            ],
        },
    }
    claim: Obj = {
        "metadata": {"name": "data", "labels": labels(spec, app, comp)},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": s.postgres_storage}}},
    }
    if s.storage_class:
        claim["spec"]["storageClassName"] = s.storage_class
    peers = [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF,
                                              COMPONENT_LABEL: c}}}
             for c in POSTGRES_CLIENTS]
    objects: list[Obj] = [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": meta(spec, POSTGRES_CONFIG, comp, app), "data": config_data},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": meta(spec, POSTGRES_INITDB, comp, app), "data": dict(src.init)},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": meta(spec, POSTGRES_HEADLESS, comp, app),
         "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": sel,
                  "ports": [{"name": "postgres", "port": pg.PORT, "targetPort": "postgres"}]}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": meta(spec, POSTGRES, comp, app),
         "spec": {"type": "ClusterIP", "selector": sel,
                  "ports": [{"name": "postgres", "port": pg.PORT, "targetPort": "postgres"}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet",
         "metadata": meta(spec, POSTGRES, comp, app),
         "spec": {
             "serviceName": POSTGRES_HEADLESS,
             "replicas": 1,
             "selector": {"matchLabels": sel},
             "podManagementPolicy": "OrderedReady",
             "updateStrategy": {"type": "RollingUpdate"},
             # Deleting or scaling the StatefulSet keeps the data volume.
             "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain",
                                                      "whenScaled": "Retain"},
             "template": pod,
             "volumeClaimTemplates": [claim],
         }},
        # One replica: maxUnavailable 1 lets a node drain proceed (minAvailable 1 would block it).
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
         "metadata": meta(spec, POSTGRES, comp, app),
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": sel},
                  "unhealthyPodEvictionPolicy": "AlwaysAllow"}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": meta(spec, POSTGRES, comp, app),
         "spec": {"podSelector": {"matchLabels": sel}, "policyTypes": ["Ingress"],
                  "ingress": [{"from": peers,
                               "ports": [{"protocol": "TCP", "port": pg.PORT}]}]}},
    ]
    for extra in spec.postgres_extra:
        obj = dict(extra)
        obj["metadata"] = {**extra["metadata"], "namespace": spec.namespace}
        objects.append(obj)
    return objects


# ---------------------------------------------------------- PostgreSQL: CNPG

# The operator, its health checks and its pooler's auth_query connect to these: left open.
_CNPG_SKIP = re.compile(r"REVOKE CONNECT ON DATABASE (postgres|template1) FROM PUBLIC;")
_PSQL_VAR = re.compile(r""":"(\w+)"|:'(\w+)'""")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def cnpg_init_sql(
    init_sql: str, names: pg.Names, pg_major: int = 17
) -> tuple[list[str], list[str]]:
    """``10-openfga.sql`` as plain statements for CloudNativePG's ``postInitSQL`` (in
    ``postgres``) and ``postInitApplicationSQL`` (in the database): psql variables
    substituted, ``\\if`` resolved for ``pg_major``, meta-commands dropped, statements that
    carry a password (managed roles set those from Secrets) or use ``\\gexec`` (whose
    generated CREATEs the operator's bootstrap and managed roles replace) left out.
    The roles the grants name are created first, NOLOGIN; managed roles then make them log in.
    """
    values = {"db": names.database, "owner": names.owner, "migrator": names.migrator,
              "app": names.app, "readonly": names.readonly}

    def subst(m: re.Match[str]) -> str:
        if m.group(1):
            if m.group(1) not in values:
                raise KubernetesInputError(f"10-openfga.sql uses :\"{m.group(1)}\", unknown here")
            return _ident(values[m.group(1)])
        if m.group(2) not in values:  # a password variable: left out with its statement
            return "\0"
        return _literal(values[m.group(2)])

    # env_ready: the names come from here, not the environment; pg16: the server's major.
    conditions = {":env_ready": True, ":pg16": pg_major >= 16}
    parts: list[list[str]] = [[], []]
    part, stmt, skip_branch, stack = 0, "", False, []
    for line in init_sql.splitlines():
        stripped = line.strip()
        if stripped.startswith("\\if"):
            cond = stripped.split(None, 1)[1]
            if cond not in conditions:
                raise KubernetesInputError(f"10-openfga.sql has \\if {cond}, unknown here")
            taken = conditions[cond]
            stack.append(skip_branch)
            skip_branch = skip_branch or not taken
            continue
        if stripped.startswith("\\else"):
            parent = stack[-1] if stack else False
            skip_branch = parent or not skip_branch
            continue
        if stripped.startswith("\\endif"):
            skip_branch = stack.pop() if stack else False
            continue
        if skip_branch or stripped.startswith("--") or not stripped:
            continue
        if stripped.startswith("\\connect"):
            part = 1
            continue
        if stripped.startswith("\\"):
            continue
        stmt += ("\n" if stmt else "") + line.rstrip()
        if stripped.endswith(";") or stripped.endswith("\\gexec") or stripped.endswith("\\gset"):
            text = _PSQL_VAR.sub(subst, stmt)
            flat = " ".join(text.split())
            if (not flat.endswith(("\\gexec", "\\gset")) and "\0" not in flat
                    and not _CNPG_SKIP.match(flat)):
                parts[part].append(flat)
            stmt = ""
    create = [f"CREATE ROLE {_ident(names.role(k))} NOLOGIN" + ";"
              for k in ("migrator", "app", "readonly")]
    return create + parts[0], parts[1]


def cnpg_parameters(src: PostgresSources, sizes: Sizes) -> dict[str, str]:
    """postgresql.conf and the sized memory.conf, minus what CloudNativePG owns."""
    params = parse_conf(src.config["postgresql.conf"])
    params.update(pg.size_memory(sizes.postgres_memory_mib, sizes.max_connections).as_conf())
    return {k: v for k, v in params.items() if k not in CNPG_OWNED_PARAMETERS}


def cnpg_pg_hba(src: PostgresSources) -> list[str]:
    """pg_hba.conf's network rules. The operator adds its own local/replication lines first
    and ends with ``host all all all scram-sha-256``; ours refuse non-TLS and superuser logins."""
    rules = []
    for raw in src.config["pg_hba.conf"].splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.split()[0] == "local":
            continue
        rules.append(" ".join(line.split()))
    return rules


def postgres_cnpg_objects(spec: Spec, src: PostgresSources) -> list[Obj]:
    s, names = spec.sizes, spec.names
    app, comp = POSTGRES, "database"
    create, app_sql = cnpg_init_sql(src.init["10-openfga.sql"], names)
    roles = []
    for kind in ("migrator", "app", "readonly"):
        role: Obj = {
            "name": names.role(kind), "ensure": "present", "login": True,
            "superuser": False, "createdb": False, "createrole": False,
            "replication": False, "bypassrls": False,
            # The migrator acts as the owner only through SET ROLE (10-openfga.sql).
            "inherit": kind != "migrator",
            "passwordSecret": {"name": ROLE_SECRET[kind]},
        }
        if kind == "migrator":  # the membership 10-openfga.sql grants, kept by the operator
            role["inRoles"] = [names.owner]
        roles.append(role)
    roles.insert(0, {"name": names.owner, "ensure": "present", "login": False,
                     "superuser": False, "createdb": False, "createrole": False,
                     "replication": False, "bypassrls": False, "inherit": True})
    cluster: Obj = {
        "apiVersion": CNPG_API, "kind": "Cluster",
        "metadata": meta(spec, POSTGRES, comp, app),
        "spec": {
            "instances": s.cnpg_instances,
            "primaryUpdateStrategy": "unsupervised",
            "enableSuperuserAccess": False,
            "storage": {"size": s.postgres_storage,
                        **({"storageClass": s.storage_class} if s.storage_class else {})},
            "resources": {"requests": {"cpu": s.postgres_cpu, "memory": s.postgres_memory},
                          "limits": {"memory": s.postgres_memory}},
            "certificates": {
                "serverTLSSecret": POSTGRES_TLS_SECRET,
                "serverCASecret": POSTGRES_TLS_SECRET,
                "serverAltDNSNames": [POOLER, f"{POOLER}.{spec.namespace}.svc"],
            },
            "postgresql": {
                "parameters": cnpg_parameters(src, s),
                "pg_hba": cnpg_pg_hba(src),
            },
            "bootstrap": {"initdb": {
                "database": names.database,
                "owner": names.owner,
                "encoding": "UTF8",
                "localeCollate": "C",
                "localeCType": "C",
                "dataChecksums": True,
                "postInitSQL": create,
                "postInitApplicationSQL": app_sql,
            }},
            "managed": {"roles": roles},
            "plugins": [{"name": BARMAN_PLUGIN, "isWALArchiver": True,
                         "parameters": {"barmanObjectName": OBJECT_STORE}}],
            "monitoring": {"enablePodMonitor": False},
        },
    }
    if spec.cnpg_image:
        cluster["spec"]["imageName"] = spec.cnpg_image
    store_config: Obj = {
        "destinationPath": spec.backup.destination,
        "s3Credentials": {
            "accessKeyId": {"name": BACKUP_S3_SECRET, "key": "ACCESS_KEY_ID"},
            "secretAccessKey": {"name": BACKUP_S3_SECRET, "key": "ACCESS_SECRET_KEY"},
        },
        "wal": {"compression": "gzip"},
        "data": {"compression": "gzip"},
    }
    if spec.backup.endpoint_url:
        store_config["endpointURL"] = spec.backup.endpoint_url
    peers = [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF,
                                              COMPONENT_LABEL: c}}}
             for c in POSTGRES_CLIENTS]
    return [
        cluster,
        {"apiVersion": CNPG_API, "kind": "Pooler",
         "metadata": meta(spec, POOLER, "pooler", app),
         "spec": {
             "cluster": {"name": POSTGRES},
             "instances": 2,
             "type": "rw",
             "pgbouncer": {"poolMode": "transaction",
                           # pgx prepares statements: PgBouncer 1.21+ tracks them per client.
                           "parameters": {"max_client_conn": "500",
                                          "default_pool_size": "20",
                                          "max_prepared_statements": "200"}},
         }},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
         "metadata": meta(spec, POSTGRES, comp, app),
         "spec": {"selector": {"matchLabels": {"cnpg.io/cluster": POSTGRES}},
                  "podMetricsEndpoints": [{"port": "metrics"}]}},
        {"apiVersion": BARMAN_API, "kind": "ObjectStore",
         "metadata": meta(spec, OBJECT_STORE, "backup", app),
         "spec": {"retentionPolicy": spec.backup.retention, "configuration": store_config}},
        {"apiVersion": CNPG_API, "kind": "ScheduledBackup",
         "metadata": meta(spec, POSTGRES, "backup", app),
         "spec": {"schedule": spec.backup.schedule, "backupOwnerReference": "self",
                  "cluster": {"name": POSTGRES}, "immediate": True, "method": "plugin",
                  "pluginConfiguration": {"name": BARMAN_PLUGIN}}},
        # CloudNativePG pods carry cnpg.io/cluster; the operator and the instances themselves
        # (replication, 8000 status) must keep reaching each other.
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": meta(spec, POSTGRES, comp, app),
         "spec": {"podSelector": {"matchLabels": {"cnpg.io/cluster": POSTGRES}},
                  "policyTypes": ["Ingress"],
                  "ingress": [
                      {"from": [*peers,
                                {"podSelector": {"matchLabels": {"cnpg.io/cluster": POSTGRES}}},
                                {"podSelector": {"matchLabels": {
                                    "cnpg.io/poolerName": POOLER}}}],
                       "ports": [{"protocol": "TCP", "port": pg.PORT}]},
                      {"from": [{"namespaceSelector": {}}],
                       "ports": [{"protocol": "TCP", "port": 8000},
                                 {"protocol": "TCP", "port": 9187}]},
                  ]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": meta(spec, POOLER, "pooler", app),
         "spec": {"podSelector": {"matchLabels": {"cnpg.io/poolerName": POOLER}},
                  "policyTypes": ["Ingress"],
                  "ingress": [{"from": peers,
                               "ports": [{"protocol": "TCP", "port": pg.PORT}]}]}},
    ]


# ---------------------------------------------------------------- OpenFGA

def migrate_job(spec: Spec) -> Obj:
    uid, gid = _openfga_uid_gid()
    app, comp = OPENFGA, "migrate"
    name = migrate_job_name(spec.openfga_version, "" if spec.placeholders else spec.openfga_image)
    container = {
        "name": "migrate",
        "image": image(spec, "openfga"),
        # The image's entrypoint is the binary (ours: /usr/bin/openfga, upstream's: /openfga).
        "args": mig.migrate_command()[1:],
        "env": [secret_env(mig.URI_ENV, MIGRATOR_DATASTORE_SECRET, URI_KEY)],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                      "limits": {"memory": "256Mi"}},
        "securityContext": restricted_container_security(uid, gid),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(spec, name, comp, app,
                         annotations={"openfga.dev/version": spec.openfga_version}),
        "spec": {
            "backoffLimit": MIGRATE_BACKOFF_LIMIT,
            "activeDeadlineSeconds": MIGRATE_DEADLINE,
            "template": {
                "metadata": {"labels": labels(spec, app, comp)},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": OPENFGA,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(uid, gid),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def openfga_objects(spec: Spec) -> list[Obj]:
    s = spec.sizes
    uid, gid = _openfga_uid_gid()
    app, comp = OPENFGA, "server"
    sel = selector(app, comp)
    # The datastore pool shares PostgreSQL's max_connections among every server pod that can
    # run at once: the replicas plus the rollout's surge pod.
    server_env = fga.server_env(replicas=s.openfga_replicas + MAX_SURGE,
                                max_connections=s.max_connections,
                                memory_mib=quantity_mib(s.openfga_memory))
    env = [{"name": k, "value": v} for k, v in server_env.items()]
    env += [secret_env(mig.URI_ENV, DATASTORE_SECRET, URI_KEY),
            secret_env(fga.PRESHARED_KEYS_ENV, PRESHARED_KEYS_SECRET, KEYS_KEY)]
    grpc_probe = {"grpc": {"port": fga.GRPC_PORT}}
    container = {
        "name": "openfga",
        "image": image(spec, "openfga"),
        "args": fga.server_command()[1:],
        "env": env,
        "ports": [{"name": "http", "containerPort": fga.HTTP_PORT, "protocol": "TCP"},
                  {"name": "grpc", "containerPort": fga.GRPC_PORT, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": fga.METRICS_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": s.openfga_cpu, "memory": s.openfga_memory},
                      "limits": {"memory": s.openfga_memory}},
        "securityContext": restricted_container_security(uid, gid),
        "startupProbe": {**grpc_probe, "periodSeconds": 2, "failureThreshold": 60},
        "readinessProbe": {**grpc_probe, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**grpc_probe, "periodSeconds": 10, "failureThreshold": 6},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    spread = [
        {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": sel}}
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta(spec, OPENFGA, comp, app,
                         annotations={"openfga.dev/version": spec.openfga_version}),
        "spec": {
            "replicas": s.openfga_replicas,
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": spec.progress_deadline,
            "selector": {"matchLabels": sel},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": MAX_SURGE}},
            "template": {
                "metadata": {"labels": labels(spec, app, comp)},
                "spec": {
                    "serviceAccountName": OPENFGA,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(uid, gid),
                    "containers": [container],
                    "topologySpreadConstraints": spread,
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }
    egress_to_db = {"podSelector": {"matchLabels": (
        {"app.kubernetes.io/name": POSTGRES} if spec.flavor == "statefulset"
        else {"cnpg.io/poolerName": POOLER})}}
    egress_rules = [
        {"to": [egress_to_db], "ports": [{"protocol": "TCP", "port": pg.PORT}]},
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
    ]
    if spec.flavor == "cnpg":  # migrations go to the primary, not through the pooler
        egress_rules.insert(1, {"to": [{"podSelector": {"matchLabels": {
            "cnpg.io/cluster": POSTGRES}}}], "ports": [{"protocol": "TCP", "port": pg.PORT}]})
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": meta(spec, OPENFGA, comp, app), "automountServiceAccountToken": False},
        migrate_job(spec),
        deployment,
        {"apiVersion": "v1", "kind": "Service",
         "metadata": meta(spec, OPENFGA, comp, app),
         "spec": {"type": "ClusterIP", "selector": sel, "ports": [
             {"name": "http", "port": fga.HTTP_PORT, "targetPort": "http"},
             {"name": "grpc", "port": fga.GRPC_PORT, "targetPort": "grpc",
              "appProtocol": "kubernetes.io/h2c"},
             {"name": "metrics", "port": fga.METRICS_PORT, "targetPort": "metrics"}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
         "metadata": meta(spec, OPENFGA, comp, app),
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": sel},
                  "unhealthyPodEvictionPolicy": "AlwaysAllow"}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": meta(spec, OPENFGA, comp, app),
         "spec": {
             "podSelector": {"matchLabels": {"app.kubernetes.io/name": OPENFGA}},
             "policyTypes": ["Ingress", "Egress"],
             "ingress": [{"ports": [{"protocol": "TCP", "port": p} for p in
                                    (fga.HTTP_PORT, fga.GRPC_PORT, fga.METRICS_PORT)]}],
             "egress": egress_rules,
         }},
    ]


# ----------------------------------------------------------------- render

def render(spec: Spec, src: PostgresSources) -> dict[str, list[Obj]]:
    """Every object, by base (``postgres-statefulset`` or ``postgres-cnpg``, and ``openfga``)."""
    if spec.flavor == "statefulset":
        postgres = postgres_statefulset_objects(spec, src)
    else:
        postgres = postgres_cnpg_objects(spec, src)
    return {POSTGRES_BASE[spec.flavor]: postgres, OPENFGA_BASE: openfga_objects(spec)}


def is_crd_kind(obj: Obj) -> bool:
    """Objects whose API a plain cluster lacks (CloudNativePG, Barman Cloud, Prometheus)."""
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    return group.endswith((".cnpg.io", "monitoring.coreos.com"))


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # plain YAML: no &id001 anchors for values shared between objects


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(objects: Iterable[Obj]) -> str:
    return "---\n".join(
        yaml.dump(o, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
        for o in objects
    )


def _file_name(obj: Obj) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def kustomization(objects: Sequence[Obj], spec: Spec) -> str:
    lines = [
        "# Generated by: python -m openfga_release.recipes.kubernetes render --out manifests",
        "# Do not edit: tests/unit/test_kubernetes_manifests.py fails when this differs from a",
        "# fresh render. Customise with an overlay (namespace, images, patches).",
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "resources:",
        *(f"  - {_file_name(o)}" for o in objects),
    ]
    kinds = {o["kind"] for o in objects}
    images = []
    if spec.placeholders and kinds & {"Deployment", "Job"}:
        images.append((IMAGE_PLACEHOLDER["openfga"], UPSTREAM_OPENFGA_IMAGE,
                       spec.openfga_version))
    if spec.placeholders and "StatefulSet" in kinds:
        name, tag = pg.POSTGRES_IMAGE.split(":")
        images.append((IMAGE_PLACEHOLDER["postgres"], f"docker.io/library/{name}", tag))
    if images:
        lines += [
            "# Pin the bytes: kustomize edit set image <name>=<registry>/<repo>@sha256:<digest>",
            "images:",
        ]
        for placeholder, new_name, tag in images:
            lines += [f"  - name: {placeholder}", f"    newName: {new_name}",
                      f"    newTag: {tag}"]
    return "\n".join(lines) + "\n"


def render_files(spec: Spec, src: PostgresSources) -> dict[str, str]:
    """Relative path -> text, for every base (one file per object, plus kustomization.yaml)."""
    files: dict[str, str] = {}
    for base, objects in render(spec, src).items():
        for obj in objects:
            files[f"{base}/{_file_name(obj)}"] = to_yaml([obj])
        files[f"{base}/kustomization.yaml"] = kustomization(objects, spec)
    return files


def committed_files(src: PostgresSources) -> dict[str, str]:
    """What ``manifests/`` holds: both flavors and openfga, upstream images by placeholder."""
    files: dict[str, str] = {}
    for flavor in FLAVORS:
        spec = Spec(openfga_image="", flavor=flavor, placeholders=True)
        files.update(render_files(spec, src))
    return files


def write_files(files: Mapping[str, str], out: Path) -> None:
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openfga_release.recipes.kubernetes")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="write the kustomize bases")
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--postgres-dir", type=Path, default=None,
                   help="images/postgres (default: the repository's, found from here)")
    r.add_argument("--openfga-image", default="",
                   help="an image by digest; without it, the committed bases (placeholders)")
    r.add_argument("--postgres-image", default=pg.POSTGRES_IMAGE)
    r.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    r.add_argument("--flavor", default="statefulset", choices=FLAVORS)
    r.add_argument("--openfga-version", default=DEFAULT_VERSION)
    r.add_argument("--postgres-memory", default=Sizes.postgres_memory)
    r.add_argument("--postgres-cpu", default=Sizes.postgres_cpu)
    r.add_argument("--postgres-storage", default=Sizes.postgres_storage)
    r.add_argument("--max-connections", type=int, default=Sizes.max_connections)
    r.add_argument("--storage-class", default="")
    r.add_argument("--openfga-replicas", type=int, default=Sizes.openfga_replicas)
    r.add_argument("--openfga-memory", default=Sizes.openfga_memory)
    r.add_argument("--openfga-cpu", default=Sizes.openfga_cpu)
    r.add_argument("--cnpg-instances", type=int, default=Sizes.cnpg_instances)
    r.add_argument("--backup-destination", default=Backup.destination)
    r.add_argument("--backup-endpoint-url", default="")
    r.add_argument("--progress-deadline", type=int, default=600)
    args = parser.parse_args(argv)
    pg_dir = args.postgres_dir or Path(__file__).resolve().parents[4] / "images" / "postgres"
    try:
        src = PostgresSources.read(pg_dir)
        if not args.openfga_image:
            files = committed_files(src)
        else:
            spec = Spec(
                openfga_image=args.openfga_image, postgres_image=args.postgres_image,
                namespace=args.namespace, flavor=args.flavor,
                openfga_version=args.openfga_version,
                sizes=Sizes(postgres_memory=args.postgres_memory, postgres_cpu=args.postgres_cpu,
                            postgres_storage=args.postgres_storage,
                            max_connections=args.max_connections,
                            storage_class=args.storage_class,
                            openfga_replicas=args.openfga_replicas,
                            openfga_memory=args.openfga_memory, openfga_cpu=args.openfga_cpu,
                            cnpg_instances=args.cnpg_instances),
                backup=Backup(destination=args.backup_destination,
                              endpoint_url=args.backup_endpoint_url),
                progress_deadline=args.progress_deadline,
            )
            files = render_files(spec, src)
        write_files(files, args.out)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for rel in sorted(files):
        print(rel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
