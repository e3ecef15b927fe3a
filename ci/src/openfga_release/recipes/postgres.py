"""PostgreSQL for OpenFGA: sizing, names, passwords, TLS files, image layout.

Plain module (no dagger import). ``images/postgres/`` holds the files a user
can run with plain PostgreSQL (config, pg_hba, init scripts, the start script
``openfga-postgres.sh``); this module holds what Python needs to know about
them: how ``memory.conf`` is sized, which names and passwords are accepted
(the same rules as ``initdb.d/00-openfga-env.sh``, checked here at plan time so
a bad argument fails before any container starts), the rules PostgreSQL applies
to TLS key files, the openssl commands of the ephemeral test CA, and where each
file goes in the image. ``postgres_pipeline`` turns it into Dagger calls; the
tests run the same files and commands against Debian's PostgreSQL.

Size ``memory.conf`` for another amount::

    python -m openfga_release.recipes.postgres memory-conf --memory 4GiB [--max-connections 80]

and find the ``--memory`` for a Unikraft instance (whose RAM also holds the rootfs)::

    python -m openfga_release.recipes.postgres unikraft-memory --instance-memory 1GiB \
        [--rootfs-size "$(du -sm kraftfiles/postgres/rootfs | cut -f1)MiB"]
"""

from __future__ import annotations

import argparse
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from . import refs
from .dsn import MAX_PASSWORD_BYTES
from .errors import InputError

# postgres:17.9-bookworm: PostgreSQL 17 is what upstream OpenFGA tests against;
# Debian (glibc) rather than Alpine so the rootfs matches the Debian PostgreSQL
# the tests run, ships setpriv (util-linux) for the root-to-postgres switch and
# openssl (a postgresql-common dependency) for certificates. A full minor tag,
# never "17" or "latest"; pass a digest (postgres:17.9-bookworm@sha256:...) to
# pin the bytes.
POSTGRES_IMAGE = "postgres:17.9-bookworm"

# Where images/postgres goes inside the image and the rootfs.
CONFIG_DIR = "/etc/postgresql/openfga"
INITDB_DIR = "/docker-entrypoint-initdb.d"
ENTRYPOINT = "/usr/local/bin/openfga-postgres"
TLS_DIR = "/etc/postgresql/tls"
VOLUME = "/volume"
PGDATA = f"{VOLUME}/postgres"
PORT = 5432
CONFIG_FILES = ("postgresql.conf", "pg_hba.conf", "pg_ident.conf")
START_SCRIPT = "openfga-postgres.sh"
# images/postgres/initdb.d, copied one by one with INIT_FILE_MODE whatever their
# mode on the host: the official runner *executes* an executable *.sh in a child
# shell, and the exports of 00-openfga-env.sh would be lost with it.
INIT_FILES = ("00-openfga-env.sh", "10-openfga.sql")
INIT_FILE_MODE = 0o644
# The *_FILE passwords are read only by the start script while it is still
# root (before it switches to postgres): root-owned and 0400, so neither the
# server nor SQL run by it (pg_read_file, COPY FROM) can read them.
SECRET_FILE_OWNER = "root:root"  # noqa: S105 (a user:group, not a secret)
SECRET_FILE_MODE = 0o400

# Non-secret environment the image adds to the official one.
IMAGE_ENV = {
    "PGDATA": PGDATA,
    "POSTGRES_CONFIG_DIR": CONFIG_DIR,
    "POSTGRES_INITDB_DIR": INITDB_DIR,
    "POSTGRES_TLS_DIR": TLS_DIR,
}
# A Unikraft rootfs carries no image ENV at all: kraftfiles/postgres/Kraftfile
# sets this (a test compares). KraftCloud has no secret files, so the instance
# makes its own self-signed certificate on first boot (kept on the volume) and
# clients use sslmode=require.
ROOTFS_ENV = {
    **IMAGE_ENV,
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    ":/usr/lib/postgresql/17/bin",
    "LANG": "C.UTF-8",
    "POSTGRES_TLS_SELF_SIGNED": "true",
}

# Removed from the rootfs: it is an initrd held in the instance's RAM. With
# jit = off nothing loads LLVM (~120 MiB with its bitcode) nor Z3 (~22 MiB, a
# library only LLVM links); docs, man pages, message translations and apt lists
# are never read at run time.
ROOTFS_PRUNE = (
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/info",
    "/usr/share/locale",
    "/var/lib/apt/lists",
    "/var/cache/apt",
    "/usr/lib/postgresql/*/lib/bitcode",
    "/usr/lib/postgresql/*/lib/llvmjit.so",
    "/usr/lib/postgresql/*/lib/llvmjit_types.bc",
    "/usr/lib/*-linux-gnu/libLLVM*",
    "/usr/lib/*-linux-gnu/libz3.so*",
)


def prune_args(paths: tuple[str, ...] = ROOTFS_PRUNE) -> list[str]:
    """``rm -rf`` every path, shell globs expanded (``/usr/lib/postgresql/*/...``);
    a pattern that matches nothing is no error."""
    return ["sh", "-c", 'for p in "$@"; do rm -rf -- $p; done', "prune", *paths]


class PostgresConfigError(InputError):
    """An input that cannot give a working, safe server; the message says the fix."""


MIN_POSTGRES_MAJOR = 14  # the oldest PostgreSQL OpenFGA supports upstream


def check_image_pinned(ref: str) -> str:
    """A postgres base image: pinned (refs' rule), Debian, PostgreSQL 14 or newer."""
    image = refs.check_pinned(ref, what="postgres", example=POSTGRES_IMAGE, parts=2)
    if not re.fullmatch(r"\d+\.\d+(-(bookworm|trixie))?", image.tag or ""):
        raise PostgresConfigError(
            f"postgres image {ref!r} is not a Debian variant named by its tag (an Alpine or "
            "other variant, or a bare digest): the start script and the build check need the "
            f"Debian variant's setpriv; name the tag, e.g. {POSTGRES_IMAGE!r} (with @sha256:...)"
        )
    if image.version is not None and image.version[0] < MIN_POSTGRES_MAJOR:
        raise PostgresConfigError(
            f"postgres image {ref!r} is PostgreSQL {image.version[0]}: OpenFGA needs "
            f"{MIN_POSTGRES_MAJOR} or newer (for example {POSTGRES_IMAGE!r})"
        )
    return ref


def config_check_args(config_dir: str) -> list[str]:
    """Parse the whole config (with memory.conf) as the image's PostgreSQL would:
    ``postgres -C`` prints one value and exits, failing on any unknown or invalid
    setting. A build-time check; runs as root and switches to postgres itself."""
    script = (
        'd=$(mktemp -d) && postgres -C shared_buffers -D "$d" -c "config_file=$0/postgresql.conf"; '
        'rc=$?; rmdir "$d"; exit $rc'
    )
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
            "sh", "-c", script, config_dir]


# ---------------------------------------------------------------- memory sizing

DEFAULT_MEMORY_MIB = 1024
DEFAULT_MAX_CONNECTIONS = 50
MIN_MEMORY_MIB = 256
MAX_MEMORY_MIB = 1024 * 1024  # 1 TiB: beyond it a size is a typo (1000000GiB), not a machine
# The connection budget (recipes/server_tuning.py sizes OpenFGA's pools from it):
SUPERUSER_RESERVED = 3  # PostgreSQL's superuser_reserved_connections default
OTHER_ROLES_RESERVED = 5  # the migrator, the read-only role, backups, monitoring
MIN_POOL_PER_REPLICA = 4  # the smallest useful OpenFGA pool
MIN_MAX_CONNECTIONS = SUPERUSER_RESERVED + OTHER_ROLES_RESERVED + MIN_POOL_PER_REPLICA
MAX_MAX_CONNECTIONS = 10000
AUTOVACUUM_WORKERS = 3  # postgresql.conf: autovacuum_max_workers
BACKEND_OVERHEAD_MIB = 2  # private memory of an idle backend, roughly
_UNITS = {"": 1, "m": 1, "mi": 1, "mb": 1, "mib": 1, "g": 1024, "gi": 1024, "gb": 1024, "gib": 1024}


def _size_mib(value: str | int, what: str = "memory") -> int:
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", value)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise PostgresConfigError(
            f"{what} {value!r} is not a size: write it like 1024MiB, 1GiB or 2Gi"
        )
    return int(m.group(1)) * _UNITS[unit]


def parse_memory(value: str | int) -> int:
    """Memory in MiB from ``1024``, ``"1024MiB"``, ``"1Gi"``, ``"2GB"``... (binary units,
    like PostgreSQL's own ``MB``/``GB``)."""
    mib = _size_mib(value)
    if mib < MIN_MEMORY_MIB:
        raise PostgresConfigError(
            f"memory {mib} MiB is too small for the config: PostgreSQL for OpenFGA needs "
            f"at least {MIN_MEMORY_MIB} MiB (1GiB is the tested default)"
        )
    if mib > MAX_MEMORY_MIB:
        raise PostgresConfigError(
            f"memory {mib} MiB is more than {MAX_MEMORY_MIB // 1024 // 1024} TiB: check the unit "
            "(write it like 1GiB or 4096MiB)"
        )
    return mib


@dataclass(frozen=True)
class MemorySettings:
    memory_mib: int
    max_connections: int
    shared_buffers: int  # all in MiB
    effective_cache_size: int
    work_mem: int
    maintenance_work_mem: int
    wal_buffers: int

    def peak_mib(self) -> int:
        """A pessimistic peak: shared memory, every autovacuum worker busy, every
        connection sorting once."""
        return (
            self.shared_buffers
            + AUTOVACUUM_WORKERS * self.maintenance_work_mem
            + self.max_connections * (self.work_mem + BACKEND_OVERHEAD_MIB)
        )

    def as_conf(self) -> dict[str, str]:
        return {
            "max_connections": str(self.max_connections),
            "shared_buffers": f"{self.shared_buffers}MB",
            "effective_cache_size": f"{self.effective_cache_size}MB",
            "work_mem": f"{self.work_mem}MB",
            "maintenance_work_mem": f"{self.maintenance_work_mem}MB",
            "wal_buffers": f"{self.wal_buffers}MB",
        }


def size_memory(
    memory: str | int = DEFAULT_MEMORY_MIB, max_connections: int = DEFAULT_MAX_CONNECTIONS
) -> MemorySettings:
    """The usual proportions: shared_buffers 25 %, effective_cache_size 50 %,
    maintenance_work_mem 1/16, work_mem what is left shared by 3 sorts per
    connection (at least 4 MiB), wal_buffers 1/32 of shared_buffers up to 16 MiB.
    Refuses a size whose pessimistic peak does not fit."""
    mib = parse_memory(memory)
    if not MIN_MAX_CONNECTIONS <= max_connections <= MAX_MAX_CONNECTIONS:
        raise PostgresConfigError(
            f"max_connections {max_connections} is out of range: use {MIN_MAX_CONNECTIONS} to "
            f"{MAX_MAX_CONNECTIONS} ({SUPERUSER_RESERVED} are the superuser's, "
            f"{OTHER_ROLES_RESERVED} the migrator's, read-only role's and backups', and one "
            f"OpenFGA pool needs {MIN_POOL_PER_REPLICA})"
        )
    shared = mib // 4
    s = MemorySettings(
        memory_mib=mib,
        max_connections=max_connections,
        shared_buffers=shared,
        effective_cache_size=mib // 2,
        work_mem=max(4, (mib - shared) // (3 * max_connections)),
        maintenance_work_mem=min(1024, max(16, mib // 16)),
        wal_buffers=max(1, min(16, shared // 32)),
    )
    if s.peak_mib() > mib:
        per_conn = s.work_mem + BACKEND_OVERHEAD_MIB
        fits = (mib - s.shared_buffers - AUTOVACUUM_WORKERS * s.maintenance_work_mem) // per_conn
        raise PostgresConfigError(
            f"memory {mib} MiB is too small for max_connections={max_connections}: the peak "
            f"estimate is {s.peak_mib()} MiB (shared_buffers {s.shared_buffers} MiB + "
            f"{AUTOVACUUM_WORKERS} autovacuum workers x {s.maintenance_work_mem} MiB + "
            f"{max_connections} connections x {per_conn} MiB); give more memory or lower "
            f"max_connections to {max(fits, 0)} or less"
        )
    return s


# On Unikraft the rootfs is an initrd held in the instance's RAM, next to
# PostgreSQL: the config must be sized for what is left, not for the instance.
# The pruned rootfs of postgres:17.9-bookworm is an estimate (no image can be
# pulled where this was written): Debian bookworm's PostgreSQL 15 packages and
# their dependencies come to ~158 MiB once pruned like ROOTFS_PRUNE, plus
# ~75 MiB of debian:bookworm-slim and the image's few extras. Measure yours:
# du -sm kraftfiles/postgres/rootfs.
ROOTFS_ESTIMATE_MIB = 256
UNIKRAFT_HEADROOM_MIB = 128  # kernel, the start script, a floor of page cache


def unikraft_memory_mib(instance: str | int, rootfs: str | int = ROOTFS_ESTIMATE_MIB,
                        max_connections: int = DEFAULT_MAX_CONNECTIONS) -> int:
    """The ``--memory`` for ``postgres-rootfs`` on an instance of ``instance``
    memory whose rootfs takes ``rootfs``: instance - rootfs - headroom."""
    inst = _size_mib(instance, "instance memory")
    root = _size_mib(rootfs, "rootfs size")
    left = inst - root - UNIKRAFT_HEADROOM_MIB
    if left < MIN_MEMORY_MIB:
        raise PostgresConfigError(
            f"an instance of {inst} MiB leaves {left} MiB for PostgreSQL once its {root} MiB "
            f"rootfs and {UNIKRAFT_HEADROOM_MIB} MiB of headroom are taken: give the instance "
            f"at least {MIN_MEMORY_MIB + root + UNIKRAFT_HEADROOM_MIB} MiB"
        )
    size_memory(left, max_connections)  # the peak must fit too
    return left


def render_memory_conf(memory: str | int = DEFAULT_MEMORY_MIB,
                       max_connections: int = DEFAULT_MAX_CONNECTIONS) -> str:
    """The text of ``images/postgres/memory.conf`` for ``memory``."""
    s = size_memory(memory, max_connections)
    lines = [
        f"# Memory-dependent settings for {s.memory_mib} MiB, max_connections={max_connections}.",
        "# Generated: python -m openfga_release.recipes.postgres memory-conf "
        f"--memory {s.memory_mib}MiB --max-connections {max_connections}",
        "# Included by postgresql.conf; regenerate rather than edit.",
    ]
    lines += [f"{k} = {v}" for k, v in s.as_conf().items()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------ names, passwords

DEFAULT_DATABASE = "openfga"
DEFAULT_ROLES = {
    "owner": "openfga_owner",
    "migrator": "openfga_migrator",
    "app": "openfga_app",
    "readonly": "openfga_readonly",
}
# The environment variables 00-openfga-env.sh reads.
NAME_ENV = {
    "database": "POSTGRES_OPENFGA_DB",
    "owner": "POSTGRES_OWNER_ROLE",
    "migrator": "POSTGRES_MIGRATOR_ROLE",
    "app": "POSTGRES_APP_ROLE",
    "readonly": "POSTGRES_READONLY_ROLE",
}
PASSWORD_ENV = {
    "migrator": "POSTGRES_MIGRATOR_PASSWORD",
    "app": "POSTGRES_APP_PASSWORD",
    "readonly": "POSTGRES_READONLY_PASSWORD",
}
RESERVED_NAMES = frozenset((
    "postgres", "public", "none", "all", "current_user", "session_user", "current_role",
    "template0", "template1", "replication", "sameuser", "samerole",
))
MIN_PASSWORD_LENGTH = 12
MIN_DISTINCT_CHARACTERS = 6
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_NAME_FIX = (
    "use lowercase letters, digits and underscores, starting with a letter or underscore, "
    "at most 63 characters (for example openfga_app)"
)
_PASSWORD_FIX = "generate one with: openssl rand -base64 24"  # noqa: S105 (advice, not a password)


def check_name(label: str, name: str) -> str:
    """A plain lowercase identifier: safe unquoted in URLs, pg_hba.conf and logs."""
    if not name:
        raise PostgresConfigError(f"{label} is empty: {_NAME_FIX}")
    if not _NAME.fullmatch(name):
        raise PostgresConfigError(f"{label} ('{name}') is not a valid name: {_NAME_FIX}")
    if name.startswith("pg_"):
        raise PostgresConfigError(
            f"{label} ('{name}') starts with pg_, which PostgreSQL reserves: choose another name"
        )
    if len(name) > 63:
        raise PostgresConfigError(
            f"{label} ('{name}') is longer than 63 characters, PostgreSQL would truncate it: "
            + _NAME_FIX
        )
    if name in RESERVED_NAMES:
        raise PostgresConfigError(f"{label} ('{name}') is a reserved name: choose another name")
    return name


@dataclass(frozen=True)
class Names:
    """The database and the four roles (see images/postgres/initdb.d/10-openfga.sql)."""

    database: str = DEFAULT_DATABASE
    owner: str = DEFAULT_ROLES["owner"]
    migrator: str = DEFAULT_ROLES["migrator"]
    app: str = DEFAULT_ROLES["app"]
    readonly: str = DEFAULT_ROLES["readonly"]

    def __post_init__(self) -> None:
        for key, env in NAME_ENV.items():
            check_name(env, getattr(self, key))
        seen: set[str] = set()
        for key in NAME_ENV:
            name = getattr(self, key)
            if name in seen:
                raise PostgresConfigError(
                    f"the name '{name}' is used twice: the database and the four roles "
                    "need distinct names"
                )
            seen.add(name)

    def env(self) -> dict[str, str]:
        """The environment the init scripts read."""
        return {env: getattr(self, key) for key, env in NAME_ENV.items()}

    def role(self, kind: str) -> str:
        return str(getattr(self, kind))


def check_password(variable: str, password: str, role: str, database: str) -> None:
    """The rules of 00-openfga-env.sh. Lengths count bytes, like the shell's ``wc -c``.
    Messages name the variable, never the value."""
    raw = password.encode()
    if not password:
        raise PostgresConfigError(
            f"{variable} is empty (and {variable}_FILE is not set): the {role} role needs a "
            f"password; {_PASSWORD_FIX}"
        )
    if any(b < 0x20 or b == 0x7F for b in raw):
        raise PostgresConfigError(
            f"{variable} contains control characters (newline, tab...): {_PASSWORD_FIX}"
        )
    if len(raw) < MIN_PASSWORD_LENGTH:
        raise PostgresConfigError(
            f"{variable} is too weak: {len(raw)} characters, at least {MIN_PASSWORD_LENGTH} "
            f"are required; {_PASSWORD_FIX}"
        )
    if len(raw) > MAX_PASSWORD_BYTES:
        raise PostgresConfigError(
            f"{variable} is {len(raw)} bytes long; at most {MAX_PASSWORD_BYTES} are allowed (a "
            f"longer value is usually the wrong file or variable); {_PASSWORD_FIX}"
        )
    if len(set(raw)) < MIN_DISTINCT_CHARACTERS:
        raise PostgresConfigError(
            f"{variable} is too weak: only {len(set(raw))} different characters, at least "
            f"{MIN_DISTINCT_CHARACTERS} are required; {_PASSWORD_FIX}"
        )
    lowered = raw.lower().decode(errors="replace")
    for word in (role, database):
        if word in lowered:
            raise PostgresConfigError(
                f"{variable} is too weak: it contains the name '{word}'; {_PASSWORD_FIX}"
            )


def check_passwords(passwords: dict[str, str], names: Names = Names()) -> None:
    """``passwords`` by role kind (migrator, app, readonly); each checked, all distinct."""
    for kind, variable in PASSWORD_ENV.items():
        check_password(variable, passwords.get(kind, ""), names.role(kind), names.database)
    if len(set(passwords[k] for k in PASSWORD_ENV)) < len(PASSWORD_ENV):
        migrator, app, readonly = PASSWORD_ENV.values()
        raise PostgresConfigError(
            f"two of {migrator}, {app} and {readonly} are equal: give each role its own password"
        )


# ----------------------------------------------------------------------- TLS

SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
CA_CERT = "ca.crt"


def key_file_problem(mode: int, owner_uid: int, server_uid: int) -> str | None:
    """Why PostgreSQL would refuse this private key file, or None if it accepts it.

    PostgreSQL's rule (be-secure-common.c): the key must be a regular file owned
    by the server's user with no group or other access (0600 or less), or owned
    by root with no more than group read (0640 or less)."""
    if not stat.S_ISREG(mode):
        return "the key is not a regular file"
    perms = stat.S_IMODE(mode)
    if owner_uid == server_uid:
        if perms & 0o077:
            return (f"the key is owned by the server's user with mode {perms:04o}: "
                    "PostgreSQL needs 0600 or less")
        return None
    if owner_uid == 0:
        if perms & 0o037:
            return (f"the key is owned by root with mode {perms:04o}: "
                    "PostgreSQL needs 0640 or less")
        return None
    return "the key is owned by neither the server's user nor root"


def check_key_file(path: Path, server_uid: int) -> None:
    st = path.stat()
    problem = key_file_problem(st.st_mode, st.st_uid, server_uid)
    if problem:
        raise PostgresConfigError(f"{path}: {problem}")


def check_hostnames(hostnames: list[str]) -> list[str]:
    if not hostnames:
        raise PostgresConfigError("the certificate needs at least one host name, e.g. postgres")
    for host in hostnames:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9a-fA-F:.]+", host):
            raise PostgresConfigError(
                f"{host!r} is not a host name or IP address for the certificate"
            )
    return hostnames


def _san(hostnames: list[str]) -> str:
    ip = re.compile(r"\d+\.\d+\.\d+\.\d+|[0-9a-fA-F:]*:[0-9a-fA-F:.]*")
    return ",".join(f"IP:{h}" if ip.fullmatch(h) else f"DNS:{h}" for h in hostnames)


TEST_CA_DAYS = 2  # a throwaway CA outlives its run by a day at most


def tls_commands(
    out: str, work: str, hostnames: list[str], days: int = TEST_CA_DAYS
) -> list[list[str]]:
    """openssl commands for an ephemeral CA and a server certificate it signs.

    Writes ``ca.crt``, ``server.crt`` and ``server.key`` to ``out``; the CA key
    stays in ``work``. The Dagger pipeline runs them in the pinned postgres image,
    the tests with this machine's openssl."""
    hosts = check_hostnames(hostnames)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    return [
        ["mkdir", "-p", out, work],
        ["openssl", "req", "-x509", *ec, "-days", str(days), "-subj", "/CN=openfga-release test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-keyout", f"{work}/ca.key", "-out", f"{out}/{CA_CERT}"],
        ["openssl", "req", "-new", *ec, "-subj", f"/CN={hosts[0]}",
         "-keyout", f"{out}/{SERVER_KEY}", "-out", f"{work}/server.csr"],
        ["sh", "-c", f'printf "%s\\n" "subjectAltName={_san(hosts)}" '
         '"extendedKeyUsage=serverAuth" "basicConstraints=CA:FALSE" > "$0"', f"{work}/ext.cnf"],
        ["openssl", "x509", "-req", "-in", f"{work}/server.csr", "-CA", f"{out}/{CA_CERT}",
         "-CAkey", f"{work}/ca.key", "-CAcreateserial", "-days", str(days),
         "-extfile", f"{work}/ext.cnf", "-out", f"{out}/{SERVER_CERT}"],
        ["chmod", "0600", f"{out}/{SERVER_KEY}"],
    ]


# ----------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openfga_release.recipes.postgres")
    sub = parser.add_subparsers(dest="command", required=True)
    mem = sub.add_parser("memory-conf", help="print memory.conf sized for --memory")
    mem.add_argument("--memory", default=f"{DEFAULT_MEMORY_MIB}MiB")
    mem.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS)
    uk = sub.add_parser("unikraft-memory",
                        help="print the --memory for postgres-rootfs on a Unikraft instance")
    uk.add_argument("--instance-memory", required=True, help="the instance's memory (-M)")
    uk.add_argument("--rootfs-size", default=f"{ROOTFS_ESTIMATE_MIB}MiB",
                    help="du -sm kraftfiles/postgres/rootfs (default: the estimate)")
    uk.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS)
    args = parser.parse_args(argv)
    try:
        if args.command == "unikraft-memory":
            mib = unikraft_memory_mib(args.instance_memory, args.rootfs_size,
                                      args.max_connections)
            print(f"{mib}MiB")
        else:
            sys.stdout.write(render_memory_conf(args.memory, args.max_connections))
    except PostgresConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
