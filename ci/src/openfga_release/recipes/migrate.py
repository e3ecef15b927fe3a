"""``openfga migrate``: the command, its environment, and what its output means.

Plain module (no dagger import). The ``migrate`` function runs
:func:`migrate_command` in the openfga-image with the datastore URI in
``OPENFGA_DATASTORE_URI`` from a secret (never in argv, where process lists,
logs and the Dagger UI show it); the integration tests run the same command
with the real binary. Facts from OpenFGA v1.22.1 (cmd/migrate,
pkg/storage/migrate) and goose v3.28:

- every migrate flag also reads ``OPENFGA_<FLAG>`` (viper AutomaticEnv), so a
  stray numeric ``OPENFGA_VERSION`` becomes ``--version`` and migrates *down*;
  ``OPENFGA_DATASTORE_USERNAME``/``_PASSWORD`` silently override the URI's.
  :data:`UNSAFE_ENV` lists what to remove; flags in argv beat env anyway.
- ``--timeout`` only bounds connecting (ping retries); the whole run needs its
  own bound, :data:`RUN_TIMEOUT`.
- logs go to stdout (JSON with ``--log-format json``): ``db info`` carries the
  revision found before migrating. goose itself logs nothing, so the revision
  *reached* is read by a second, no-op pass (its "current version") or from the
  ``goose_db_version`` table (:func:`read_revision`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import anyio

from . import dsn
from .errors import InputError, StepError
from .image import BINARY_PATH
from .postgres import Names

URI_ENV = "OPENFGA_DATASTORE_URI"
PASSWORD_ENV = "OPENFGA_DATASTORE_PASSWORD"  # noqa: S105 (a name; overrides the URI's password)
# Env vars `openfga migrate` reads on its own. Remove them before setting ours.
UNSAFE_ENV = (
    "OPENFGA_VERSION",
    "OPENFGA_DATASTORE_ENGINE",
    "OPENFGA_DATASTORE_URI",
    "OPENFGA_DATASTORE_USERNAME",
    "OPENFGA_DATASTORE_PASSWORD",
    "OPENFGA_TIMEOUT",
    "OPENFGA_VERBOSE",
)
CONNECT_TIMEOUT = 30  # seconds migrate keeps retrying to reach the database
RUN_TIMEOUT = 600  # seconds for the whole run (a lock wait must not hang a release)
# A per-run value (not OPENFGA_-prefixed, so OpenFGA ignores it) that keeps the
# engine from answering the run, or its verification pass, from the exec cache.
RUN_ID_ENV = "MIGRATE_RUN_ID"
_SEMVER = re.compile(r"^v?\d+\.\d+")


class MigrateError(StepError):
    """Migrate failed: ``str()`` is one sentence with the fix; ``detail`` is redacted output."""


class MigrateInputError(InputError):
    """A migrate argument that cannot be right; raised before anything runs."""


DEFAULT_NAMES = Names()


def check_target(version: int | str | None) -> int | None:
    """A schema revision to migrate to (None: the newest), or a clear error."""
    if version is None or version == "":
        return None
    text = str(version).strip()
    if _SEMVER.match(text):
        raise MigrateInputError(
            f"schema revision {text} looks like a release tag, but the target of migrate "
            "(--schema-revision; openfga's own --version) is a schema revision, a number such "
            "as 6; omit it to migrate to the newest schema"
        )
    if not text.isdigit() or int(text) < 1:
        raise MigrateInputError(
            f"schema revision {text!r} is not valid: give a positive number such as 6 "
            "(--schema-revision), or omit it to migrate to the newest schema"
        )
    return int(text)


def check_migrator_user(user: str, names: Names = DEFAULT_NAMES) -> str:
    """Only the migrator role runs migrations: an allow-list of one.

    ``names`` are the roles the PostgreSQL init made (``--migrator-role`` renames it).
    The server's, the reader's and the owner's roles are named in the message; any
    other role (a superuser, a personal login) is refused too: DDL runs as the owner
    only through the migrator's ``SET role``, so nothing else should ever migrate.
    """
    if user == names.migrator:
        return user
    known = {names.app: "rows only", names.readonly: "reads only", names.owner: "NOLOGIN"}
    what = f"a least-privilege role ({known[user]})" if user in known else "not the migrator role"
    raise MigrateInputError(
        f"{user} may not run migrations: it is {what}; run migrate as {names.migrator}, whose "
        f"session acts as the schema owner {names.owner} (--migrator-role names another migrator)"
    )


def check_datastore_args(
    uri_given: bool,
    host: str,
    password_given: bool,
    *,
    user: str = "",
    port: int = 5432,
    sslmode: str = "",
) -> None:
    """The datastore is a secret URI, or a host with a secret password: exactly one of them.

    With a URI, the host-mode arguments would be silently ignored (OpenFGA reads
    only the URI): refused, so nobody believes they took effect.
    """
    if uri_given == bool(host):
        raise MigrateInputError(
            "give the datastore either as --datastore-uri env://VAR (a secret) or as "
            "--host with --password env://VAR, not both and not neither"
        )
    if host and not password_given:
        raise MigrateInputError("--host needs --password env://VAR (a secret)")
    if uri_given:
        ignored = [
            flag for flag, given in (
                ("--password", password_given), ("--user", bool(user)),
                ("--port", port != 5432), ("--sslmode", bool(sslmode)),
            ) if given
        ]  # fmt: skip
        if ignored:
            raise MigrateInputError(
                f"{', '.join(ignored)} would be ignored with --datastore-uri (the URI alone says "
                "where, who and how): put them in the URI, or use --host with --password instead"
            )


def migrate_command(
    version: int | None = None, *, binary: str = BINARY_PATH, connect_timeout: int = CONNECT_TIMEOUT
) -> list[str]:
    """argv for ``openfga migrate``; ``--version`` only when the caller asks for a revision."""
    argv = [
        binary, "migrate",
        "--datastore-engine", "postgres",
        "--timeout", f"{int(connect_timeout)}s",
        "--log-format", "json",
        "--log-level", "info",
    ]
    target = check_target(version)
    if target is not None:
        argv += ["--version", str(target)]
    return argv


def clean_env(base: Mapping[str, str], **ours: str) -> dict[str, str]:
    """``base`` without any OPENFGA_* variable, plus ``ours`` (for running the binary locally)."""
    env = {k: v for k, v in base.items() if not k.startswith("OPENFGA_")}
    env.update(ours)
    return env


@dataclass(frozen=True)
class MigrateLog:
    """What one ``openfga migrate`` run said it did."""

    before: int | None  # the revision found ("db info" / "current version")
    target: int | None  # --version, when given
    # No "changed": OpenFGA logs "migration done" even when there was nothing to do.


@dataclass(frozen=True)
class MigrateReport:
    before: int | None
    revision: int  # the schema revision reached
    target: int | None
    # The Down steps run on purpose (--allow-downgrade), one line each; () otherwise.
    downgraded: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.before != self.revision

    def summary(self) -> str:
        if not self.changed:
            return f"schema already at revision {self.revision}: nothing to migrate"
        text = f"schema migrated from revision {self.before} to {self.revision}"
        if self.downgraded and self.before is not None and self.revision < self.before:
            text += " (DOWNGRADE, --allow-downgrade): " + "; ".join(self.downgraded)
        return text


def _records(stdout: str) -> Iterable[dict[str, Any]]:
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                yield rec


def parse_log(stdout: str) -> MigrateLog:
    before = target = None
    for rec in _records(stdout):
        msg = rec.get("msg")
        if msg == "db info" and isinstance(rec.get("current version"), int):
            before = rec["current version"]
        elif msg == "migration to" and isinstance(rec.get("target version"), int):
            target = rec["target version"]
    return MigrateLog(before, target)


def check_result(
    returncode: int, stdout: str, stderr: str, secrets: Sequence[str] = ()
) -> MigrateLog:
    """The run's log if it succeeded; else :class:`MigrateError` (redacted, explained)."""
    if returncode == 0:
        log = parse_log(stdout)
        if log.before is None:
            raise MigrateError(
                "openfga migrate exited 0 without reporting a schema revision: is the datastore "
                "engine postgres and the binary an OpenFGA release?",
                redact(stdout, secrets)[-2000:],
            )
        return log
    text = redact(stderr + "\n" + stdout, secrets)
    raise MigrateError(explain_failure(text), _tail(text))


MAX_RUN_TIMEOUT = 6 * 3600  # seconds; longer is a hung lock, not a migration


def check_timeout(timeout: float) -> float:
    """The bound for the whole run: longer than connecting may take, at most 6 hours."""
    if not CONNECT_TIMEOUT < timeout <= MAX_RUN_TIMEOUT:
        raise MigrateInputError(
            f"--timeout {timeout:g} is out of range: give seconds above the {CONNECT_TIMEOUT} s "
            f"migrate spends connecting and at most {MAX_RUN_TIMEOUT} (default {RUN_TIMEOUT})"
        )
    return timeout


def timed_out(timeout: float) -> MigrateError:
    return MigrateError(
        f"openfga migrate did not finish within {timeout:g} s: another migrate may hold the "
        "schema (run it once, from one job; see pg_stat_activity), or the database stopped "
        "answering. Raise --timeout only for a very large database"
    )


async def run_and_verify(
    run_once: Callable[[list[str]], Awaitable[MigrateLog]], argv: list[str], timeout: float
) -> MigrateReport:
    """Migrate, then a pass to the same target that states the revision reached.

    The one implementation the ``migrate`` function, test-e2e and the local harness
    share. The second pass carries the same ``--version``: without it OpenFGA would
    migrate on up to the newest revision. Bounded in time as a whole.
    """
    try:
        with anyio.fail_after(timeout):
            first = await run_once(argv)
            second = await run_once(argv)
    except TimeoutError:
        raise timed_out(timeout) from None
    return report(first, second)


def report(first: MigrateLog, second: MigrateLog) -> MigrateReport:
    """Combine a run with the no-op pass after it, which states the revision reached."""
    if second.before is None:
        raise MigrateError("the verification pass of openfga migrate reported no revision")
    if first.target is not None and second.before != first.target:
        raise MigrateError(
            f"openfga migrate succeeded but the schema is at revision {second.before}, not "
            f"{first.target}: another migrate may have run at the same time; run it once"
        )
    return MigrateReport(before=first.before, revision=second.before, target=first.target)


def _relevant(text: str) -> list[str]:
    """The lines that can carry an error: not cobra's usage text, not blank."""
    return [
        ln for ln in text.splitlines()
        if ln.strip() and not ln.startswith(("Usage:", "Flags:", "  "))
    ]


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(_relevant(text)[-lines:])


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` without the secrets (every printed form, any length) or any URI password.

    One owner: :func:`openfga_release.recipes.dsn.redact` (Go's %q-escaped
    ``parse "..."`` errors, pgx's ``cannot parse``, JSON-escaped logs).
    """
    return dsn.redact(text, secrets)


# (pattern in the error text, one sentence: what is wrong and how to fix it)
_EXPLANATIONS: tuple[tuple[str, str], ...] = (
    (r"playground only supports authn method",
     "the playground cannot run with preshared-key authn: leave OPENFGA_PLAYGROUND_ENABLED "
     "unset or false (the pipeline keeps it off)"),
    (r"invalid database uri|invalid userinfo|invalid port|invalid URL escape",
     "the datastore URI does not parse: percent-encode the user and password (@ : / ? # % and "
     "spaces), e.g. build it with openfga_release.recipes.dsn.Dsn, or pass host, database, "
     "user and a password secret instead of a URI"),
    (r"password authentication failed for user \"?([\w.-]+)",
     "PostgreSQL refused the password for role {0}: the datastore secret holds a wrong or "
     "stale password; update the secret (or rotate the role's password) and run again"),
    (r"no pg_hba\.conf entry|pg_hba\.conf rejects",
     "PostgreSQL's pg_hba.conf refuses this connection: connect over TLS "
     "(sslmode=require) as openfga_migrator or openfga_app, never as postgres"),
    (r"role \"([\w.-]+)\" does not exist",
     "role {0} does not exist on this PostgreSQL: create the roles with the project's init SQL "
     "(images/postgres/initdb.d) or fix the user in the datastore URI"),
    (r"database \"([\w.-]+)\" does not exist",
     "database {0} does not exist: create it with the project's init SQL "
     "(images/postgres/initdb.d) or fix the database name in the URI"),
    (r"permission denied for database",
     "the role may not connect to this database: GRANT CONNECT to it (the project's init SQL "
     "does this for openfga_migrator, openfga_app and openfga_readonly)"),
    (r"permission denied for (schema|table|sequence)|must be owner of",
     "this role may not change the schema: run migrate as openfga_migrator (which acts as "
     "openfga_owner); openfga_app only reads and writes rows and must never migrate"),
    (r"datastore requires migrations|NOT_SERVING",
     "the database schema is behind this OpenFGA version: run migrate first "
     "(dagger call migrate ...) as openfga_migrator, then start or restart the server"),
    (r"server refused TLS|server does not support SSL|SSL is not enabled|tls: ",
     "the TLS handshake with PostgreSQL failed: the server needs a certificate for "
     "sslmode=require, and sslmode=verify-full also needs sslrootcert with its CA"),
    (r"no such host|server misbehaving",
     "the database host name does not resolve from here: check it (a <name>.internal name "
     "only resolves inside the same KraftCloud compose project or network)"),
    (r"connection refused",
     "nothing accepts connections at the database host and port: start PostgreSQL, or fix "
     "the host/port in the datastore URI"),
    (r"i/o timeout|timeout|deadline exceeded|timed out",
     "the database did not answer before the timeout: check that PostgreSQL runs and that the "
     "network allows this connection (use a <name>.internal name, never a private IP that "
     "changes on redeploy)"),
)


def explain_failure(text: str, what: str = "openfga migrate") -> str:
    """One plain sentence naming what went wrong and how to fix it."""
    lines = _relevant(text)
    relevant = "\n".join(lines)
    for pattern, sentence in _EXPLANATIONS:
        found = re.search(pattern, relevant, re.IGNORECASE)
        if found:
            return sentence.format(*found.groups())
    first = next((ln for ln in lines if ln.startswith(("panic:", "Error:", "fatal"))), None)
    cause = (first or (lines[-1] if lines else "no output")).strip()
    return f"{what} failed: {cause}"


class _Cursor(Protocol):
    def execute(self, query: str, /) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchone(self) -> Any: ...


class _Connection(Protocol):
    def cursor(self) -> Any: ...


# The rows goose reads, newest first; revision_from_rows applies goose's rule.
REVISION_QUERY = "SELECT version_id, is_applied FROM goose_db_version ORDER BY id DESC"


def revision_from_rows(rows: Iterable[tuple[int, bool]]) -> int:
    """The current revision as goose computes it: the newest row per version decides."""
    undone: set[int] = set()
    for version, applied in rows:
        if version in undone:
            continue
        if applied:
            return int(version)
        undone.add(version)
    return 0


def read_revision(conn: _Connection) -> int:
    """The schema revision of a database (0 when never migrated), over any DB-API connection."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('goose_db_version') IS NOT NULL")
        if not cur.fetchone()[0]:
            return 0
        cur.execute(REVISION_QUERY)
        return revision_from_rows(cur.fetchall())


def secrets_in(datastore_env: Mapping[str, str]) -> list[str]:
    """Every value to redact: the env values and the decoded password inside the URI."""
    out = [v for v in datastore_env.values() if v]
    try:
        password = urlsplit(datastore_env.get(URI_ENV, "")).password
    except ValueError:
        password = None
    return [*out, unquote(password)] if password else out


# -- the downgrade guard ---------------------------------------------------------
#
# goose runs a migration's "-- +goose Down" section for every revision above the
# target. What those sections drop in OpenFGA v1.22.1
# (assets/migrations/postgres/00N_*.sql; tests/real/test_migrate.py reads the
# real files from the Go module cache and fails if this table disagrees).
# Each entry: (kind, name) with kind "table", "column" (table.column) or "index".
DOWN_DROPS: dict[int, tuple[tuple[str, str], ...]] = {
    1: (("table", "tuple"), ("table", "authorization_model"), ("table", "store"),
        ("table", "assertion"), ("table", "changelog")),
    2: (("column", "authorization_model.schema_version"),),
    3: (("index", "idx_reverse_lookup_user"),),
    4: (("column", "authorization_model.serialized_protobuf"),),
    5: (("column", "tuple.condition_name"), ("column", "tuple.condition_context"),
        ("column", "changelog.condition_name"), ("column", "changelog.condition_context")),
    6: (("index", "idx_user_lookup"),),
}  # fmt: skip
# What a reader should know about the loss, beyond the names.
_DOWN_MEANING = {
    1: "every store, model, tuple, assertion and change: all OpenFGA data",
    2: "the schema version of every authorization model",
    3: "an index only",
    4: "every stored model's serialized form",
    5: "the condition of every tuple and change (conditional tuples become unconditional)",
    6: "an index only",
}


class DowngradeError(MigrateInputError):
    """A target below the database's current revision, without --allow-downgrade."""


def down_steps(current: int, target: int) -> list[str]:
    """One line per Down step goose runs from ``current`` down to ``target``, newest first."""
    lines = []
    for revision in range(current, target, -1):
        drops = DOWN_DROPS.get(revision)
        if drops is None:
            lines.append(f"revision {revision}: unknown to OpenFGA v1.22.1 (a newer release's)")
            continue
        names = ", ".join(f"{kind} {name}" for kind, name in drops)
        lines.append(f"revision {revision} drops {names} ({_DOWN_MEANING[revision]})")
    return lines


def check_downgrade(current: int, target: int | None, allow: bool) -> tuple[str, ...]:
    """Refuse a target below ``current`` unless ``allow``; the Down steps it runs (if any).

    ``current`` is the revision the read-only probe found before migrating.
    """
    if target is None or target >= current:
        return ()
    steps = tuple(down_steps(current, target))
    if not allow:
        raise DowngradeError(
            f"--schema-revision {target} is below the database's current schema revision "
            f"{current}: migrating down runs OpenFGA's Down steps, which delete data: "
            + "; ".join(steps)
            + ". Back up the database and pass --allow-downgrade to do this on purpose, or "
            "omit --schema-revision (or give at least revision "
            f"{current}) to keep the schema"
        )
    return steps


# -- the read-only revision probe (psql, before migrating to a given revision) ----

PROBE_URI_ENV = "PROBE_DATASTORE_URI"
PROBE_SCRIPT_PATH = "/probe/revision.sql"
# goose's table may not exist (never migrated: revision 0); psql's \if skips the read.
PROBE_SCRIPT = (
    "SELECT to_regclass('goose_db_version') IS NOT NULL AS present \\gset\n"
    "\\if :present\n"
    f"{REVISION_QUERY};\n"
    "\\endif\n"
)
# libpq reads these on its own; the probe container removes them before setting ours.
PROBE_UNSAFE_ENV = tuple(dsn.PGX_ENV)
_VERIFYING = ("verify-ca", "verify-full")
# Query keys libpq knows too; any other (pgx-only) key would make psql refuse the URI.
LIBPQ_QUERY_KEYS = frozenset({
    "sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout",
    "target_session_attrs", "application_name",
})  # fmt: skip


def probe_command(script: str = PROBE_SCRIPT_PATH, *, psql: str = "psql") -> list[str]:
    """argv of the probe: psql reads the URI from :data:`PROBE_URI_ENV` (never argv)."""
    return [
        "sh", "-c",
        f'exec {psql} "${PROBE_URI_ENV}" --no-psqlrc --quiet --no-align --tuples-only '
        f"--field-separator=, --set=ON_ERROR_STOP=1 --file={script}",
    ]  # fmt: skip


def probe_env(target_dsn: dsn.Dsn, *, ca_bundle: str) -> dict[str, str]:
    """Plain env for the probe, besides the URI (and PGPASSWORD, a secret, in host mode).

    pgx verifies against the system roots when sslmode is verify-* without
    sslrootcert; libpq would look for ~/.postgresql/root.crt instead, so the
    probe is pointed at the CA bundle OpenFGA's image trusts (a fallback: a
    URI's own sslrootcert wins).
    """
    # pgx-only query keys (which psql would refuse) never get here: dsn's allow-list
    # (ALLOWED_QUERY_KEYS, a subset of LIBPQ_QUERY_KEYS; a unit test holds it) refuses them.
    env = {}
    if target_dsn.sslmode in _VERIFYING and "sslrootcert" not in target_dsn.params:
        env["PGSSLROOTCERT"] = ca_bundle
    return env


def probe_files(target_dsn: dsn.Dsn) -> dict[str, int]:
    """Files the URI names (CA, client certificate and key): path -> mode, copied as-is."""
    modes = {"sslrootcert": 0o644, "sslcert": 0o644, "sslkey": 0o600}
    return {
        target_dsn.params[key]: mode
        for key, mode in modes.items()
        if target_dsn.params.get(key, "").startswith("/")
    }


def parse_probe(stdout: str) -> int:
    """The revision the probe's rows give (goose's rule); no rows: 0 (never migrated)."""
    rows = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        version, _, applied = line.strip().partition(",")
        if not version.isdigit() or applied not in ("t", "f"):
            raise MigrateError(
                "the schema revision probe printed something that is not goose_db_version rows: "
                "is this an OpenFGA PostgreSQL database? Omit --schema-revision to let "
                "openfga migrate decide"
            )
        rows.append((int(version), applied == "t"))
    return revision_from_rows(rows)


def check_probe(returncode: int, stdout: str, stderr: str, secrets: Sequence[str] = ()) -> int:
    """The current revision, or a :class:`MigrateError` explaining why psql could not read it."""
    if returncode == 0:
        return parse_probe(stdout)
    text = redact(stderr + "\n" + stdout, secrets)
    raise MigrateError(
        explain_failure(text, "the schema revision probe (psql)")
        + " (the probe runs only because --schema-revision was given; nothing was migrated)",
        _tail(text),
    )
