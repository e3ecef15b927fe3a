"""``openfga migrate``: argv, environment, log parsing, error explanations, redaction.

The error texts below were produced by the real OpenFGA v1.22.1 binary against
the project's PostgreSQL (test_migrate_pg.py reproduces each one live).
"""

from __future__ import annotations

import subprocess

import pytest
from openfga_release.recipes import dsn, migrate
from openfga_release.recipes.dsn import Dsn
from openfga_release.recipes.errors import InputError
from openfga_release.recipes.migrate import (
    MigrateError,
    MigrateInputError,
    MigrateLog,
    check_datastore_args,
    check_migrator_user,
    check_result,
    check_target,
    check_timeout,
    clean_env,
    explain_failure,
    migrate_command,
    parse_log,
    redact,
    report,
    revision_from_rows,
)
from openfga_release.recipes.postgres import Names

from tests.support.gobuild_local import ensure_openfga

USAGE = (
    "Usage:\n  openfga migrate [flags]\n\nFlags:\n"
    "      --timeout duration   a timeout for the time it takes the migrate process to connect "
    "to the database (default 1m0s)\n"
    "      --version uint       the version to migrate to (if omitted the latest schema will be "
    "used)\n"
)
CONNECT = "Error: failed to initialize database connection: failed to connect to "
LOG_UP = (
    '{"level":"info","timestamp":1795307264.2,"msg":"db info","build.version":"v1.22.1",'
    '"current version":5}\n'
    '{"level":"info","timestamp":1795307264.2,"msg":"running all migrations"}\n'
    '{"level":"info","timestamp":1795307264.2,"msg":"migration done"}\n'
)
LOG_TO = (
    '{"level":"info","msg":"db info","current version":0}\n'
    '{"level":"info","msg":"migration to","target version":5}\n'
    '{"level":"info","msg":"migration done"}\n'
)
REAL_ERRORS = {
    "wrong password": (
        CONNECT + "`user=openfga_migrator "
        "database=openfga`: 127.0.0.1:58961 (127.0.0.1): failed SASL auth: FATAL: password "
        'authentication failed for user "openfga_migrator" (SQLSTATE 28P01)'
    ),
    "down": (
        CONNECT + "`user=openfga_migrator "
        "database=openfga`:\n\t127.0.0.1:58961 (127.0.0.1): dial error: dial tcp 127.0.0.1:58961: "
        "connect: connection refused"
    ),
    "app on empty": (
        'Error: failed to get db version: ERROR: relation "goose_db_version" does not exist '
        "(SQLSTATE 42P01); ERROR: permission denied for schema public (SQLSTATE 42501)"
    ),
    "app with work to do": (
        "Error: failed to run migrations: ERROR 006_add_collate_index.sql: failed to run SQL "
        'migration: failed to execute SQL query "CREATE INDEX CONCURRENTLY IF NOT EXISTS '
        'idx_user_lookup on tuple (store);": ERROR: must be owner of table tuple (SQLSTATE 42501)'
    ),
    "no tls": (
        CONNECT + "`user=openfga_migrator "
        'database=openfga`: 127.0.0.1:58961 (127.0.0.1): server error: FATAL: pg_hba.conf rejects '
        'connection for host "127.0.0.1", user "openfga_migrator", database "openfga", no '
        "encryption (SQLSTATE 28000)"
    ),
    "no database": (
        CONNECT + "`user=openfga_migrator "
        'database=nodb`: 127.0.0.1:58961 (127.0.0.1): server error: FATAL: database "nodb" '
        "does not exist (SQLSTATE 3D000)"
    ),
    "bad uri": (
        'Error: invalid database uri: parse "postgres://migrator:p@ss:w/rd?": invalid port ":w" '
        "after host"
    ),
}
EXPECTED = {
    "wrong password": "refused the password for role openfga_migrator",
    "down": "nothing accepts connections at the database host and port",
    "app on empty": "run migrate as openfga_migrator",
    "app with work to do": "run migrate as openfga_migrator",
    "no tls": "connect over TLS (sslmode=require)",
    "no database": "database nodb does not exist",
    "bad uri": "percent-encode the user and password",
}


def test_command_has_no_secret_and_version_only_when_asked() -> None:
    argv = migrate_command()
    assert argv == [
        "/usr/bin/openfga", "migrate", "--datastore-engine", "postgres", "--timeout", "30s",
        "--log-format", "json", "--log-level", "info",
    ]
    assert "--datastore-uri" not in argv and "--datastore-password" not in argv
    pinned = migrate_command(6, binary="/x/openfga", connect_timeout=5)
    assert pinned[0] == "/x/openfga" and pinned[-2:] == ["--version", "6"] and "5s" in pinned


@pytest.mark.parametrize("value", [None, ""])
def test_no_version_means_newest(value: str | None) -> None:
    assert check_target(value) is None
    assert "--version" not in migrate_command(check_target(value))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("v1.22.1", "looks like a release tag"), ("1.22", "looks like a release tag"),
     ("0", "positive number"), ("-3", "positive number"), ("six", "positive number")],
)
def test_bad_versions_are_refused(value: str, fragment: str) -> None:
    with pytest.raises(MigrateInputError, match=fragment):
        migrate_command(value)  # type: ignore[arg-type]


def test_unsafe_env_names_every_variable_migrate_reads_itself() -> None:
    assert "OPENFGA_VERSION" in migrate.UNSAFE_ENV
    assert {"OPENFGA_DATASTORE_USERNAME", "OPENFGA_DATASTORE_PASSWORD"} <= set(migrate.UNSAFE_ENV)
    env = clean_env(
        {"OPENFGA_VERSION": "1", "OPENFGA_DATASTORE_USERNAME": "postgres", "PATH": "/bin"},
        OPENFGA_DATASTORE_URI="postgres://u@h/d",
    )
    assert env == {"PATH": "/bin", "OPENFGA_DATASTORE_URI": "postgres://u@h/d"}


def test_app_readonly_and_owner_roles_may_not_migrate() -> None:
    assert check_migrator_user("openfga_migrator") == "openfga_migrator"
    for role in ("openfga_app", "openfga_readonly", "openfga_owner"):
        with pytest.raises(MigrateInputError, match="run migrate as openfga_migrator"):
            check_migrator_user(role)


def test_the_guard_follows_custom_role_names() -> None:
    names = Names(app="authz_app", readonly="authz_ro", migrator="authz_mig", owner="authz_own")
    assert check_migrator_user("authz_mig", names) == "authz_mig"
    for role in ("authz_app", "authz_ro", "authz_own"):
        with pytest.raises(MigrateInputError, match="run migrate as authz_mig") as err:
            check_migrator_user(role, names)
        assert role in str(err.value)
    # Only the migrator migrates: an allow-list, not a list of forbidden roles.
    for other in ("openfga_migrator", "postgres", "admin", "rdsadmin"):
        with pytest.raises(MigrateInputError, match="it is not the migrator role") as err:
            check_migrator_user(other, names)
        assert "run migrate as authz_mig" in str(err.value)


@pytest.mark.parametrize(
    ("uri", "host", "password", "match"),
    [
        (False, "", False, "either"),
        (True, "db.internal", True, "not both"),
        (True, "db.internal", False, "not both"),
        (False, "db.internal", False, "--host needs --password"),
    ],
)
def test_datastore_is_a_secret_uri_or_a_host_with_a_secret_password(
    uri: bool, host: str, password: bool, match: str
) -> None:
    with pytest.raises(MigrateInputError, match=match):
        check_datastore_args(uri, host, password)


def test_datastore_args_accepted() -> None:
    check_datastore_args(True, "", False)
    check_datastore_args(False, "db.internal", True)


@pytest.mark.parametrize("timeout", [-1, 0, 1, 30, 6 * 3600 + 1, 1e9])
def test_timeout_out_of_range_is_refused(timeout: float) -> None:
    with pytest.raises(MigrateInputError, match="out of range"):
        check_timeout(timeout)


@pytest.mark.parametrize("timeout", [31, 600, 6 * 3600])
def test_timeout_in_range(timeout: float) -> None:
    assert check_timeout(timeout) == timeout


def test_log_parsing() -> None:
    assert parse_log(LOG_UP) == MigrateLog(before=5, target=None)
    assert parse_log(LOG_TO) == MigrateLog(before=0, target=5)
    assert parse_log("not json\n{broken\n") == MigrateLog(None, None)


def test_report_takes_the_revision_from_the_verification_pass() -> None:
    r = report(MigrateLog(0, None), MigrateLog(6, None))
    assert (r.before, r.revision, r.changed) == (0, 6, True)
    assert r.summary() == "schema migrated from revision 0 to 6"
    same = report(MigrateLog(6, None), MigrateLog(6, None))
    assert not same.changed and same.summary() == "schema already at revision 6: nothing to migrate"
    with pytest.raises(MigrateError, match="not 5"):
        report(MigrateLog(0, 5), MigrateLog(6, 5))
    with pytest.raises(MigrateError, match="no revision"):
        report(MigrateLog(0, None), MigrateLog(None, None))


def test_check_result_success_and_failure() -> None:
    assert check_result(0, LOG_UP, "").before == 5
    with pytest.raises(MigrateError, match="without reporting a schema revision"):
        check_result(0, "", "")
    with pytest.raises(MigrateError) as err:
        check_result(1, "", REAL_ERRORS["wrong password"] + "\n" + USAGE)
    assert "refused the password" in str(err.value)
    assert "SQLSTATE 28P01" in err.value.detail and "Usage" not in err.value.detail


@pytest.mark.parametrize("case", sorted(REAL_ERRORS))
def test_real_failures_become_one_sentence_with_the_fix(case: str) -> None:
    # cobra appends its usage text (which mentions "timeout") to every error.
    sentence = explain_failure(REAL_ERRORS[case] + "\n" + USAGE)
    assert EXPECTED[case] in sentence
    assert "\n" not in sentence


def test_timeouts_and_unknown_failures() -> None:
    assert "did not answer before the timeout" in explain_failure(
        "Error: failed to initialize database connection: dial tcp 10.0.1.229:5432: i/o timeout"
    )
    assert "not resolve" in explain_failure("dial tcp: lookup postgres.internal: no such host")
    assert "schema is behind" in explain_failure(
        "datastore requires migrations: at revision '3', but requires '4'. Run 'openfga migrate'."
    )
    unknown = explain_failure("Error: something new\n" + USAGE)
    assert unknown == "openfga migrate failed: Error: something new"


def test_redaction() -> None:
    pw = "p@ss:w/rd?#%&= x"
    dsn = Dsn(host="db.internal", database="openfga", user="openfga_migrator", password=pw)
    text = f"uri={dsn.secret_uri()} raw={pw} " + REAL_ERRORS["bad uri"]
    out = redact(text, [pw])
    assert pw not in out and dsn.secret_uri() not in out
    assert "p@ss" not in out and "p%40ss" not in out
    assert "postgres://openfga_migrator:***@db.internal" in out
    assert 'parse "<datastore URI, redacted>"' in out
    # Text without secrets is left alone.
    assert redact(REAL_ERRORS["down"]) == REAL_ERRORS["down"]


def test_goose_revision_rule() -> None:
    assert revision_from_rows([]) == 0
    assert revision_from_rows([(6, True), (5, True), (0, True)]) == 6
    # 6 was rolled back (newest row for 6 says not applied): current is 5.
    assert revision_from_rows([(6, False), (6, True), (5, True), (0, True)]) == 5
    assert revision_from_rows([(6, False), (5, False), (5, True), (6, True), (4, True)]) == 4


@pytest.mark.integration
def test_a_malformed_uri_never_reaches_the_report_unredacted() -> None:
    # OpenFGA echoes the start of a URI it cannot parse: half a password.
    pw = "p@ss:w/rd?#x"
    raw = f"postgres://migrator:{pw}@127.0.0.1:1/openfga"
    argv = migrate_command(binary=str(ensure_openfga()), connect_timeout=1)
    proc = subprocess.run(
        argv, env={"OPENFGA_DATASTORE_URI": raw}, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and "p@ss" in proc.stderr  # the leak we guard against
    with pytest.raises(MigrateError) as err:
        check_result(proc.returncode, proc.stdout, proc.stderr, [raw, pw])
    assert "percent-encode" in str(err.value)
    assert "p@ss" not in str(err.value) + err.value.detail


# -- the downgrade guard and its read-only probe


@pytest.mark.parametrize(("current", "target"), [(0, 1), (0, 6), (4, 6), (6, 6), (7, 7)])
def test_no_downgrade_needs_no_permission(current: int, target: int) -> None:
    assert migrate.check_downgrade(current, target, allow=False) == ()
    assert migrate.check_downgrade(current, None, allow=False) == ()


def test_a_downgrade_is_refused_naming_both_revisions_and_what_is_dropped() -> None:
    with pytest.raises(migrate.DowngradeError) as err:
        migrate.check_downgrade(6, 4, allow=False)
    text = str(err.value)
    assert "--schema-revision 4" in text and "current schema revision 6" in text
    assert "revision 6 drops index idx_user_lookup" in text
    assert "column tuple.condition_name, column tuple.condition_context" in text
    assert "revision 4 drops" not in text  # goose stops above the target
    assert "--allow-downgrade" in text and "omit --schema-revision" in text
    assert isinstance(err.value, InputError)


def test_an_allowed_downgrade_lists_its_steps_newest_first() -> None:
    steps = migrate.check_downgrade(6, 1, allow=True)
    assert [s.split(" drops")[0] for s in steps] == [f"revision {r}" for r in (6, 5, 4, 3, 2)]
    assert "all OpenFGA data" not in " ".join(steps)  # revision 1 stays
    assert "all OpenFGA data" in migrate.down_steps(1, 0)[0]


def test_an_unknown_newer_revision_is_named_as_such() -> None:
    with pytest.raises(migrate.DowngradeError, match=r"revision 7: unknown to OpenFGA v1\.22\.1"):
        migrate.check_downgrade(7, 6, allow=False)


def test_the_report_says_a_downgrade_happened() -> None:
    report = migrate.MigrateReport(6, 4, 4, downgraded=tuple(migrate.down_steps(6, 4)))
    assert report.summary().startswith("schema migrated from revision 6 to 4 (DOWNGRADE")
    assert migrate.MigrateReport(4, 6, 6).summary() == "schema migrated from revision 4 to 6"


@pytest.mark.parametrize(
    ("stdout", "revision"),
    [("", 0), ("\n", 0), ("6,t\n5,t\n", 6), ("6,f\n6,t\n5,t\n", 5), ("3,f\n", 0)],
)
def test_probe_rows_follow_goose(stdout: str, revision: int) -> None:
    assert migrate.parse_probe(stdout) == revision


@pytest.mark.parametrize("stdout", ["6\n", "x,t\n", "6,true\n", "psql: hello\n"])
def test_probe_output_that_is_not_rows_is_an_error(stdout: str) -> None:
    with pytest.raises(MigrateError, match="not goose_db_version rows"):
        migrate.parse_probe(stdout)


def test_a_failed_probe_is_one_redacted_sentence() -> None:
    secret = "pr0be-Secret"
    err = (
        'psql: error: connection to server at "db" failed: FATAL:  password authentication '
        f'failed for user "openfga_migrator" {secret}'
    )
    with pytest.raises(MigrateError) as failed:
        migrate.check_probe(2, "", err, [secret])
    assert "refused the password" in str(failed.value)
    assert "nothing was migrated" in str(failed.value)
    assert secret not in str(failed.value) + failed.value.detail


def test_the_probe_keeps_secrets_out_of_argv_and_reads_its_uri_from_the_env() -> None:
    argv = migrate.probe_command()
    assert argv[:2] == ["sh", "-c"] and f'"${migrate.PROBE_URI_ENV}"' in argv[2]
    assert "ON_ERROR_STOP=1" in argv[2] and migrate.PROBE_SCRIPT_PATH in argv[2]
    assert migrate.REVISION_QUERY in migrate.PROBE_SCRIPT


def test_psql_knows_every_query_key_a_uri_may_carry() -> None:
    # dsn's allow-list refuses pgx-only keys before the probe; it must stay within libpq's.
    assert set(dsn.ALLOWED_QUERY_KEYS) <= migrate.LIBPQ_QUERY_KEYS


def test_probe_env_points_verify_modes_at_openfgas_ca_bundle() -> None:
    ca = "/probe/ca.crt"
    verify = Dsn("db.example.com", "openfga", "openfga_migrator", sslmode="verify-full")
    assert migrate.probe_env(verify, ca_bundle=ca) == {"PGSSLROOTCERT": ca}
    require = Dsn("db.example.com", "openfga", "openfga_migrator", sslmode="require")
    assert migrate.probe_env(require, ca_bundle=ca) == {}  # libpq would verify with a root file
    own = Dsn(
        "db.example.com", "openfga", "openfga_migrator", sslmode="verify-ca",
        params={"sslrootcert": "/etc/ssl/pg/ca.crt", "sslkey": "/etc/ssl/pg/k.key"},
    )  # fmt: skip
    assert migrate.probe_env(own, ca_bundle=ca) == {}
    assert migrate.probe_files(own) == {"/etc/ssl/pg/ca.crt": 0o644, "/etc/ssl/pg/k.key": 0o600}


@pytest.mark.parametrize(
    "extra",
    [{"password_given": True}, {"user": "openfga_app"}, {"port": 6432}, {"sslmode": "disable"}],
)
def test_host_mode_arguments_beside_a_uri_are_refused_not_ignored(extra: dict) -> None:
    kw = {"password_given": False, **extra}
    password_given = kw.pop("password_given")
    with pytest.raises(MigrateInputError, match="would be ignored with --datastore-uri"):
        check_datastore_args(True, "", password_given, **kw)
