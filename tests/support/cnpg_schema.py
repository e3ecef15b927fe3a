"""OUR OWN minimal schemas for the CloudNativePG, Barman Cloud and Prometheus kinds we render.

Not CloudNativePG's CRDs (which are not in any package registry here and are never committed):
written by hand from CloudNativePG's API reference (cloudnative-pg.io/docs, "API Reference":
ClusterSpec, BootstrapInitDB, ManagedConfiguration/RoleConfiguration, CertificatesConfiguration,
PostgresConfiguration, PluginConfiguration, PoolerSpec/PgBouncerSpec, ScheduledBackupSpec), the
Barman Cloud plugin's ObjectStore docs and the Prometheus operator's PodMonitor. They hold only
the fields we use, closed (no unknown field passes), with the enums and types the docs give.

Two uses: :func:`check` validates an object in Python (unit tests), and :func:`crds` turns the
same tree into CustomResourceDefinitions so the test control plane validates the objects with
the apiserver's own strict field validation.
"""

from __future__ import annotations

from typing import Any

S = {"type": "string"}
B = {"type": "boolean"}
I = {"type": "integer"}  # noqa: E741
STRS = {"type": "array", "items": S}
STRMAP = {"type": "object", "additionalProperties": S}
REF = {"type": "object", "properties": {"name": S}, "required": ["name"]}
KEYREF = {"type": "object", "properties": {"name": S, "key": S}, "required": ["name", "key"]}
QUANTITY_MAP = {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True}}
RESOURCES = {"type": "object", "properties": {"requests": QUANTITY_MAP, "limits": QUANTITY_MAP}}
LABEL_SELECTOR = {"type": "object", "properties": {"matchLabels": STRMAP}}


def obj(required: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


ROLE = obj(
    ("name",),
    name=S, comment=S, ensure=enum("present", "absent"), login=B, superuser=B, createdb=B,
    createrole=B, inherit=B, replication=B, bypassrls=B, connectionLimit=I, validUntil=S,
    inRoles=STRS, passwordSecret=REF, disablePassword=B,
)

CLUSTER_SPEC = obj(
    ("instances",),
    instances={"type": "integer", "minimum": 1},
    imageName=S,
    primaryUpdateStrategy=enum("unsupervised", "supervised"),
    enableSuperuserAccess=B,
    storage=obj(("size",), size=S, storageClass=S),
    resources=RESOURCES,
    certificates=obj(serverTLSSecret=S, serverCASecret=S, clientCASecret=S,
                     replicationTLSSecret=S, serverAltDNSNames=STRS),
    postgresql=obj(parameters=STRMAP, pg_hba=STRS, pg_ident=STRS),
    bootstrap=obj(initdb=obj(database=S, owner=S, secret=REF, encoding=S, localeCollate=S,
                             localeCType=S, dataChecksums=B, postInitSQL=STRS,
                             postInitApplicationSQL=STRS, postInitTemplateSQL=STRS)),
    managed=obj(roles={"type": "array", "items": ROLE}),
    plugins={"type": "array", "items": obj(("name",), name=S, enabled=B, isWALArchiver=B,
                                           parameters=STRMAP)},
    monitoring=obj(enablePodMonitor=B),
)

POOLER_SPEC = obj(
    ("cluster", "pgbouncer"),
    cluster=REF, instances=I, type=enum("rw", "ro", "r"),
    pgbouncer=obj(poolMode=enum("session", "transaction"), parameters=STRMAP),
)

SCHEDULED_BACKUP_SPEC = obj(
    ("cluster", "schedule"),
    cluster=REF, schedule=S, immediate=B, suspend=B,
    backupOwnerReference=enum("none", "self", "cluster"),
    method=enum("barmanObjectStore", "volumeSnapshot", "plugin"),
    pluginConfiguration=obj(("name",), name=S, parameters=STRMAP),
)

OBJECT_STORE_SPEC = obj(
    ("configuration",),
    retentionPolicy={"type": "string", "pattern": r"^[1-9][0-9]*[dwm]$"},
    configuration=obj(
        ("destinationPath",),
        destinationPath=S, endpointURL=S,
        s3Credentials=obj(accessKeyId=KEYREF, secretAccessKey=KEYREF, region=KEYREF,
                          sessionToken=KEYREF, inheritFromIAMRole=B),
        wal=obj(compression=enum("bzip2", "gzip", "lz4", "snappy", "xz", "zstd"),
                maxParallel=I),
        data=obj(compression=enum("bzip2", "gzip", "lz4", "snappy", "xz", "zstd"), jobs=I),
    ),
)

POD_MONITOR_SPEC = obj(
    ("selector",),
    selector=LABEL_SELECTOR,
    podMetricsEndpoints={"type": "array", "items": obj(port=S, path=S, interval=S)},
)

# (group, version, kind, plural) -> spec schema
KINDS: dict[tuple[str, str, str, str], dict[str, Any]] = {
    ("postgresql.cnpg.io", "v1", "Cluster", "clusters"): CLUSTER_SPEC,
    ("postgresql.cnpg.io", "v1", "Pooler", "poolers"): POOLER_SPEC,
    ("postgresql.cnpg.io", "v1", "ScheduledBackup", "scheduledbackups"): SCHEDULED_BACKUP_SPEC,
    ("barmancloud.cnpg.io", "v1", "ObjectStore", "objectstores"): OBJECT_STORE_SPEC,
    ("monitoring.coreos.com", "v1", "PodMonitor", "podmonitors"): POD_MONITOR_SPEC,
}


def schema_for(api_version: str, kind: str) -> dict[str, Any]:
    for (group, version, k, _), spec in KINDS.items():
        if f"{group}/{version}" == api_version and k == kind:
            return spec
    raise KeyError(f"no schema of ours for {api_version} {kind}")


def check(schema: dict[str, Any], value: Any, path: str = "spec") -> list[str]:
    """Problems of ``value`` against ``schema`` (closed objects: unknown fields are errors)."""
    problems: list[str] = []
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            problems.append(f"{path}: not an int or string")
        return problems
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{path}.{key}: required")
        for key, item in value.items():
            if props is not None and key in props:
                problems += check(props[key], item, f"{path}.{key}")
            elif extra is not None:
                problems += check(extra, item, f"{path}.{key}")
            else:
                problems.append(f"{path}.{key}: unknown field")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        for i, item in enumerate(value):
            problems += check(schema["items"], item, f"{path}[{i}]")
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: not a string ({value!r})")
        elif "enum" in schema and value not in schema["enum"]:
            problems.append(f"{path}: {value!r} not one of {schema['enum']}")
        elif "pattern" in schema:
            import re

            if not re.match(schema["pattern"], value):
                problems.append(f"{path}: {value!r} does not match {schema['pattern']}")
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: not an integer")
        elif "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: below {schema['minimum']}")
    elif kind == "boolean" and not isinstance(value, bool):
        problems.append(f"{path}: not a boolean")
    return problems


def crds() -> list[dict[str, Any]]:
    """Our schemas as CustomResourceDefinitions (test clusters only; never shipped)."""
    out = []
    for (group, version, kind, plural), spec in KINDS.items():
        out.append({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}",
                         "annotations": {"openfga-release.test/origin":
                                         "hand-written from the docs; not upstream's CRD"}},
            "spec": {
                "group": group, "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                          "listKind": f"{kind}List"},
                "versions": [{
                    "name": version, "served": True, "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "apiVersion": S, "kind": S, "metadata": {"type": "object"},
                        "spec": spec,
                        "status": {"type": "object",
                                   "x-kubernetes-preserve-unknown-fields": True},
                    }}},
                }],
            },
        })
    return out
