"""images/postgres on a real PostgreSQL (Debian's package), started by the
image's own start script: config applied, init idempotent, the privilege
matrix, authentication and TLS, first and later boots, passwords kept out of
every file and log, bad input refused before anything starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from openfga_release import postgres as pg

from tests.support.pg import (
    IMAGE_DIR,
    TEST_PASSWORDS,
    PgServer,
    ServerExited,
    bindir,
    pg_server_fixture,  # noqa: F401 (the "pg_server" fixture)
    running_postgres,
)

pytestmark = pytest.mark.integration


RUNNERS = {
    "dash": ["dash", "-c", "set -eu; "],
    # The official image's docker-entrypoint.sh sources *.sh under bash like this.
    "bash-official": ["bash", "-c", "set -Eeo pipefail; "],
}


def run_init(server: PgServer, shell: str = "dash") -> subprocess.CompletedProcess[str]:
    """The init scripts, run the way the start script and the official runner do
    (source the .sh, psql the .sql) against the running server."""
    env = {
        "PATH": f"{bindir()}:/usr/bin:/bin",
        "PGHOST": str(server.socket_dir), "PGPORT": str(server.port),
        "PGUSER": "postgres", "PGDATABASE": "postgres",
        **server.names.env(),
        **{var: server.passwords[kind] for kind, var in pg.PASSWORD_ENV.items()},
    }
    *argv, prefix = RUNNERS[shell]
    script = prefix + ('. "$0/00-openfga-env.sh"; '
                       'psql -v ON_ERROR_STOP=1 --no-psqlrc -q -f "$0/10-openfga.sql"')
    return subprocess.run([*argv, script, str(server.config / "initdb.d")],
                          env=env, capture_output=True, text=True)


def sqlstate(server: PgServer, who: str, sql: str, *, read_write: bool = True) -> str:
    """'ok' or the SQLSTATE of running ``sql`` as ``who`` (always rolled back)."""
    with server.connect(who) as conn:
        if read_write:  # privileges, not the read-only default, decide
            conn.execute("SET default_transaction_read_only = off")
            conn.commit()
        try:
            if sql.startswith("DROP DATABASE"):
                conn.autocommit = True
            conn.execute(sql)
        except psycopg.Error as exc:
            return exc.sqlstate or "?"
        finally:
            if not conn.autocommit:
                conn.rollback()
    return "ok"


def login_error(server: PgServer, dsn: str) -> str:
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(dsn, connect_timeout=10).close()
    return str(err.value)


# --------------------------------------------------------------- config

def test_config_is_applied(pg_server: PgServer) -> None:
    expected = {
        **pg.size_memory().as_conf(),
        "random_page_cost": "1.1",
        "checkpoint_completion_target": "0.9",
        "autovacuum": "on",
        "log_min_duration_statement": "500ms",
        "password_encryption": "scram-sha-256",
        "shared_preload_libraries": "pg_stat_statements",
        "ssl": "on",
        "ssl_min_protocol_version": "TLSv1.2",
        "jit": "off",
        "log_statement": "none",
        "unix_socket_permissions": "0700",
        "listen_addresses": "127.0.0.1",
        "config_file": str(pg_server.config / "postgresql.conf"),
        "hba_file": str(pg_server.config / "pg_hba.conf"),
        "ident_file": str(pg_server.config / "pg_ident.conf"),
        "data_checksums": "on",
        "server_encoding": "UTF8",
    }
    with pg_server.superuser() as conn:
        shown = {k: conn.execute(f"SHOW {k}").fetchone()[0] for k in expected}  # type: ignore[index]
        assert shown == expected
        # (settings overridden on the command line show "could not be applied")
        errors = ("SELECT * FROM pg_file_settings WHERE error IS NOT NULL "
                  "AND error <> 'setting could not be applied'")
        assert conn.execute(errors).fetchall() == []
        errors = "SELECT * FROM pg_hba_file_rules WHERE error IS NOT NULL"
        assert conn.execute(errors).fetchall() == []
        assert conn.execute("SELECT count(*) >= 0 FROM pg_stat_statements").fetchone() == (True,)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary directory the postgres OS user can reach (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="openfga-pgtest-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_config_check_command_parses_the_config_with_real_postgres(shared_tmp: Path) -> None:
    env = {"PATH": f"{bindir()}:/usr/bin:/bin"}
    config = shared_tmp / "config"
    shutil.copytree(IMAGE_DIR, config)
    ok = subprocess.run(pg.config_check_args(str(config)), env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == str(256 * 1024 // 8)  # shared_buffers in 8 kB pages
    with open(config / "postgresql.conf", "a") as f:
        f.write("shared_bufers = 1\n")
    bad = subprocess.run(pg.config_check_args(str(config)), env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    assert 'unrecognized configuration parameter "shared_bufers"' in bad.stderr


# ------------------------------------------------------- privilege matrix

OPS = {
    "create table": "CREATE TABLE matrix_new (id int)",
    "drop table": "DROP TABLE matrix_t",
    "insert": "INSERT INTO matrix_t (v) VALUES ('x')",
    "update": "UPDATE matrix_t SET v = 'y'",
    "delete": "DELETE FROM matrix_t",
    "select": "SELECT * FROM matrix_t",
    "truncate": "TRUNCATE matrix_t",
    "create schema": "CREATE SCHEMA matrix_s",
    "drop database": "DROP DATABASE openfga",
    "create role": "CREATE ROLE matrix_r",
}
OK, DENIED, IN_USE = "ok", "42501", "55006"
MATRIX = {  # op: (migrator, app, readonly)
    "create table": (OK, DENIED, DENIED),
    "drop table": (OK, DENIED, DENIED),
    "insert": (OK, OK, DENIED),
    "update": (OK, OK, DENIED),
    "delete": (OK, OK, DENIED),
    "select": (OK, OK, OK),
    "truncate": (OK, DENIED, DENIED),
    "create schema": (OK, DENIED, DENIED),
    # The migrator acts as the database's owner, but may connect to no other
    # database (see below), and nobody can drop the database they are in.
    "drop database": (IN_USE, DENIED, DENIED),
    "create role": (DENIED, DENIED, DENIED),
}


@pytest.fixture(scope="module")
def matrix_table(pg_server: PgServer) -> Iterator[None]:
    """The init scripts run twice more, then the migrator creates a table (as a
    migration would): only the default privileges can give the other roles
    access to it."""
    for _ in range(2):
        rerun = run_init(pg_server)
        assert rerun.returncode == 0, rerun.stderr
    with pg_server.connect("migrator") as conn:
        conn.execute("CREATE TABLE matrix_t (id serial PRIMARY KEY, v text)")
        conn.execute("INSERT INTO matrix_t (v) VALUES ('a')")
    yield
    with pg_server.connect("migrator") as conn:
        conn.execute("DROP TABLE matrix_t")


@pytest.mark.parametrize("who", ["migrator", "app", "readonly"])
@pytest.mark.parametrize("op", list(OPS))
def test_privilege_matrix(pg_server: PgServer, matrix_table: None, op: str, who: str) -> None:
    expected = MATRIX[op][["migrator", "app", "readonly"].index(who)]
    assert sqlstate(pg_server, who, OPS[op]) == expected


@pytest.mark.parametrize("shell", sorted(RUNNERS))
def test_init_scripts_run_twice_without_error(pg_server: PgServer, shell: str) -> None:
    for _ in range(2):
        proc = run_init(pg_server, shell)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""


def test_migrations_create_tables_owned_by_the_owner(
    pg_server: PgServer, matrix_table: None
) -> None:
    with pg_server.connect("migrator") as conn:
        assert conn.execute("SELECT current_user, session_user").fetchone() == (
            "openfga_owner", "openfga_migrator")
        conn.execute("CREATE TABLE later_t (id serial PRIMARY KEY, v text)")
    with pg_server.connect("migrator", autocommit=True) as conn:
        conn.execute("CREATE INDEX CONCURRENTLY later_i ON later_t (v)")
    try:
        with pg_server.superuser() as su:
            owners = su.execute(
                "SELECT relname, pg_get_userbyid(relowner) FROM pg_class "
                "WHERE relname IN ('matrix_t', 'later_t', 'later_i', 'later_t_id_seq') ORDER BY 1"
            ).fetchall()
        assert owners == [(n, "openfga_owner") for n in
                          ("later_i", "later_t", "later_t_id_seq", "matrix_t")]
        # Default privileges cover it: the app writes (with the sequence), the reader reads.
        with pg_server.connect("app") as conn:
            conn.execute("INSERT INTO later_t (v) VALUES ('from app')")
        with pg_server.connect("readonly") as conn:
            assert conn.execute("SELECT v FROM later_t").fetchall() == [("from app",)]
    finally:
        with pg_server.connect("migrator") as conn:
            conn.execute("DROP TABLE later_t")


def test_migrator_without_the_owner_role_can_create_nothing(pg_server: PgServer) -> None:
    with pg_server.connect("migrator") as conn:
        conn.execute("SET ROLE NONE")  # RESET would restore the per-database default
        assert conn.execute("SELECT current_user").fetchone() == ("openfga_migrator",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.mine (id int)")


def test_readonly_sessions_are_read_only_by_default(
    pg_server: PgServer, matrix_table: None
) -> None:
    got = sqlstate(pg_server, "readonly", OPS["insert"], read_write=False)
    assert got == "25006"  # read_only_sql_transaction


def test_roles_attributes(pg_server: PgServer) -> None:
    with pg_server.superuser() as conn:
        rows = conn.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolinherit, "
            "rolreplication, rolbypassrls FROM pg_roles WHERE rolname LIKE 'openfga_%' ORDER BY 1"
        ).fetchall()
        assert rows == [
            ("openfga_app", True, False, False, False, True, False, False),
            ("openfga_migrator", True, False, False, False, False, False, False),
            ("openfga_owner", False, False, False, False, True, False, False),
            ("openfga_readonly", True, False, False, False, True, False, False),
        ]
        assert conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'openfga'"
        ).fetchone() == ("openfga_owner",)
        assert conn.execute(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'"
        ).fetchone() == ("openfga_owner",)
        # Stored as SCRAM verifiers, never md5 or plain.
        assert conn.execute(
            "SELECT bool_and(rolpassword LIKE 'SCRAM-SHA-256$%') FROM pg_authid "
            "WHERE rolname IN ('openfga_migrator', 'openfga_app', 'openfga_readonly')"
        ).fetchone() == (True,)


# ------------------------------------------------------ authentication, TLS

def test_tls_logins_succeed(pg_server: PgServer) -> None:
    for who in ("migrator", "app", "readonly"):
        with pg_server.connect(who) as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("SELECT session_user").fetchone() == (pg_server.role(who),)
    with pg_server.connect("app") as conn:  # the server's view of the same
        row = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert row.fetchone() == (True, "TLSv1.3")
    # verify-full: the ephemeral CA signed a certificate naming 127.0.0.1.
    with psycopg.connect(pg_server.dsn("app", sslmode="verify-full")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("openfga_app",)


def test_without_tls_the_login_is_refused(pg_server: PgServer) -> None:
    msg = login_error(pg_server, pg_server.dsn("app", sslmode="disable"))
    assert "pg_hba.conf rejects connection" in msg and "no encryption" in msg


def test_server_offers_only_scram(pg_server: PgServer) -> None:
    with psycopg.connect(pg_server.dsn("app") + "&require_auth=scram-sha-256"):
        pass
    for method in ("md5", "password"):
        msg = login_error(pg_server, pg_server.dsn("app") + f"&require_auth={method}")
        assert f'requirement "{method}" failed: server requested SASL authentication' in msg


def test_md5_credentials_are_refused(pg_server: PgServer) -> None:
    """A role whose password is stored as md5 cannot log in; with SCRAM it can."""
    pw = "Md5-stored-pass!9"
    with pg_server.superuser() as su:
        su.execute("SET password_encryption = 'md5'")
        su.execute(f"CREATE ROLE md5_probe LOGIN PASSWORD '{pw}'")
        su.execute("GRANT CONNECT ON DATABASE openfga TO md5_probe")
    try:
        msg = login_error(pg_server, pg_server.dsn("md5_probe", password=pw))
        assert 'password authentication failed for user "md5_probe"' in msg
        with pg_server.superuser() as su:
            su.execute("SET password_encryption = 'scram-sha-256'")
            su.execute(f"ALTER ROLE md5_probe PASSWORD '{pw}'")
        with psycopg.connect(pg_server.dsn("md5_probe", password=pw)):
            pass
    finally:
        with pg_server.superuser() as su:
            su.execute("REVOKE CONNECT ON DATABASE openfga FROM md5_probe")
            su.execute("DROP ROLE md5_probe")


def test_wrong_password_is_refused(pg_server: PgServer) -> None:
    msg = login_error(pg_server, pg_server.dsn("app", password="Wrong-password-123"))
    assert 'password authentication failed for user "openfga_app"' in msg


def test_superuser_never_logs_in_over_the_network(pg_server: PgServer) -> None:
    msg = login_error(pg_server, pg_server.dsn("postgres", password="anything-at-all"))
    assert 'pg_hba.conf rejects connection for host "127.0.0.1", user "postgres"' in msg


def test_owner_cannot_log_in(pg_server: PgServer) -> None:
    msg = login_error(pg_server, pg_server.dsn("openfga_owner", password="anything-at-all"))
    assert 'password authentication failed for user "openfga_owner"' in msg


def test_login_roles_cannot_use_the_local_socket(pg_server: PgServer) -> None:
    for who in ("migrator", "app"):
        with pytest.raises(psycopg.OperationalError) as err:
            psycopg.connect(host=str(pg_server.socket_dir), port=pg_server.port,
                            user=pg_server.role(who), password=pg_server.passwords[who],
                            dbname="openfga", connect_timeout=10)
        assert 'pg_hba.conf rejects connection for host "[local]"' in str(err.value)


@pytest.mark.parametrize("who", ["migrator", "app", "readonly"])
def test_login_roles_cannot_open_other_databases(pg_server: PgServer, who: str) -> None:
    msg = login_error(pg_server, pg_server.dsn(who, dbname="postgres"))
    assert 'permission denied for database "postgres"' in msg


def test_without_certificates_no_network_login_is_possible() -> None:
    with running_postgres(tls=False) as server:
        with server.superuser() as su:
            assert su.execute("SHOW ssl").fetchone() == ("off",)
        assert "no encryption" in login_error(server, server.dsn("app", sslmode="prefer"))
        assert "server does not support SSL" in login_error(server, server.dsn("app"))
        assert "TLS is off and pg_hba.conf refuses every network login" in server.log()


def test_self_signed_certificate_is_made_once_and_kept() -> None:
    with running_postgres(tls=False, extra_env={"POSTGRES_TLS_SELF_SIGNED": "true"}) as server:
        cert = server.volume / "tls" / "server.crt"
        first = cert.read_bytes()
        with server.connect("app") as conn:
            assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                                ).fetchone() == (True,)
        server.restart()
        assert cert.read_bytes() == first
        with server.connect("app"):
            pass


# ------------------------------------------ boots, key files, no leaked passwords

def scan(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path}: {n!r}" for n in needles if n in data]
    return hits


def test_boots_key_files_and_no_password_in_any_file_or_log() -> None:
    """One server through its life: first boot with statement logging forced on
    and passwords from *_FILE, the init run again, a later boot with no password
    at all, a hard kill and the boot after it, a boot after an interrupted
    initialisation; then every file it wrote
    (data directory, WAL, statistics, logs) is searched for the passwords."""
    server = PgServer(
        passwords_as_files=True,
        server_args=["-c", "log_statement=all", "-c", "log_min_duration_statement=0"],
        memory_conf=pg.render_memory_conf("2GiB"),
    )
    try:
        server.start()
        assert "first boot: initdb" in server.log()
        with server.superuser() as su:
            assert su.execute("SHOW shared_buffers").fetchone() == ("512MB",)
        with server.connect("migrator") as conn:
            conn.execute("CREATE TABLE boot_t (v text)")
            conn.execute("INSERT INTO boot_t VALUES ('kept')")
        assert run_init(server).returncode == 0
        with server.superuser() as su:
            texts = [r[0] for r in su.execute("SELECT query FROM pg_stat_statements").fetchall()]
        assert texts and not [t for t in texts if any(p in t for p in server.passwords.values())]

        # A later boot needs no password at all.
        for var in pg.PASSWORD_ENV.values():
            server.env.pop(var + "_FILE")
        shutil.rmtree(server.base / "secrets")
        server.restart()
        assert "database already initialised: starting" in server.log()
        with server.connect("app") as conn:
            assert conn.execute("SELECT v FROM boot_t").fetchall() == [("kept",)]

        # Switched off hard: the next boot recovers (crash recovery, stale pid file).
        with server.connect("app") as conn:
            conn.execute("INSERT INTO boot_t VALUES ('committed before the crash')")
        server.kill()
        server.start()
        with server.connect("app") as conn:
            assert len(conn.execute("SELECT v FROM boot_t").fetchall()) == 2

        # A first boot that died before the marker: the init scripts run again.
        server.stop()
        (server.pgdata / "openfga-init.done").unlink()
        server.env.update({var: server.passwords[k] for k, var in pg.PASSWORD_ENV.items()})
        server.restart()
        assert "initialisation did not finish: running the init scripts again" in server.log()
        with server.connect("readonly") as conn:
            assert ("kept",) in conn.execute("SELECT v FROM boot_t").fetchall()
        server.stop()

        needles = [p.encode() for p in server.passwords.values()]
        needles += [quote(p, safe="").encode() for p in server.passwords.values()]
        assert scan(server.base, needles) == []
        # ... and not because nothing was logged: statement logging was on.
        assert "statement: SET log_statement = 'none'" in server.log()
        check_key_files(server)
    finally:
        server.cleanup()


def check_key_files(server: PgServer) -> None:
    """The source key (0644, like a Kubernetes secret volume) would be refused by
    PostgreSQL; the start script's installed copy is accepted. The rule in
    postgres.py predicts what the real server does."""
    postgres_uid = int(subprocess.run(["id", "-u", "postgres"], capture_output=True,
                                      text=True, check=True).stdout)
    source = server.tls_dir / pg.SERVER_KEY
    installed = server.socket_dir / "tls" / pg.SERVER_KEY
    assert pg.key_file_problem(source.stat().st_mode, source.stat().st_uid, postgres_uid)
    pg.check_key_file(installed, postgres_uid)

    loose = server.socket_dir / "tls" / "loose.key"
    shutil.copy(installed, loose)
    os.chown(loose, postgres_uid, -1)
    loose.chmod(0o644)
    assert pg.key_file_problem(loose.stat().st_mode, loose.stat().st_uid, postgres_uid)
    proc = subprocess.run(
        ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
         str(bindir() / "postgres"), "-D", str(server.pgdata),
         "-c", f"config_file={server.config}/postgresql.conf", "-c", "ssl=on",
         "-c", f"ssl_cert_file={installed.parent}/server.crt", "-c", f"ssl_key_file={loose}",
         "-c", "listen_addresses=", "-c", f"unix_socket_directories={server.socket_dir}"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "has group or world access" in proc.stderr


# ------------------------------------------------------------- bad input

BAD = {
    "empty password": ({"app": ""}, {}, "POSTGRES_APP_PASSWORD is empty"),
    "weak password": ({"readonly": "short-pw"}, {}, "POSTGRES_READONLY_PASSWORD is too weak"),
    "invalid role": ({}, {"POSTGRES_APP_ROLE": "App-Role"},
                     "POSTGRES_APP_ROLE ('App-Role') is not a valid name"),
    "invalid database": ({}, {"POSTGRES_OPENFGA_DB": "pg_fga"},
                         "POSTGRES_OPENFGA_DB ('pg_fga') starts with pg_"),
    "value and file": ({}, {"POSTGRES_APP_PASSWORD_FILE": "/etc/hostname"},
                       "both POSTGRES_APP_PASSWORD and POSTGRES_APP_PASSWORD_FILE are set"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_stops_the_start_script_before_anything_exists(case: str) -> None:
    passwords, env, message = BAD[case]
    server = PgServer(tls=False, passwords={**TEST_PASSWORDS, **passwords}, extra_env=env)
    try:
        with pytest.raises(ServerExited) as err:
            server.start()
        assert err.value.returncode == 1
        assert f"openfga init: error: {message}" in err.value.log
        assert not server.volume.exists()  # no data directory, no initdb
        for pw in {**TEST_PASSWORDS, **passwords}.values():
            assert not pw or pw not in err.value.log
    finally:
        server.cleanup()


def test_failed_init_script_stops_everything_and_the_next_boot_finishes() -> None:
    server = PgServer(tls=False)
    try:
        broken = server.config / "initdb.d" / "20-broken.sql"
        broken.write_text("SELECT 1 / 0;\n")
        with pytest.raises(ServerExited) as err:
            server.start()
        assert "division by zero" in err.value.log
        assert not (server.pgdata / "postmaster.pid").exists()  # temp server stopped
        assert not (server.pgdata / "openfga-init.done").exists()
        broken.unlink()
        server.start()
        assert "initialisation did not finish: running the init scripts again" in server.log()
        with server.superuser() as su:
            assert su.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'openfga_%'"
                              ).fetchone() == (4,)
    finally:
        server.cleanup()


def test_a_runtime_that_ignores_setuid_gets_a_clear_error() -> None:
    """A fake setpriv that keeps root (what a runtime without user switching
    does): the start script says so instead of letting PostgreSQL fail."""
    server = PgServer(tls=False)
    try:
        fakebin = server.base / "fakebin"
        fakebin.mkdir()
        fake = fakebin / "setpriv"
        fake.write_text('#!/bin/sh\nwhile [ "$1" != -- ]; do shift; done\nshift\nexec "$@"\n')
        fake.chmod(0o755)
        server.env["PATH"] = f"{fakebin}:{server.env['PATH']}"
        with pytest.raises(ServerExited) as err:
            server.start()
        assert "still root after switching to postgres: this runtime did not apply setuid" \
            in err.value.log
        assert not (server.pgdata / "PG_VERSION").exists()
    finally:
        server.cleanup()


def test_certificate_without_key_is_refused() -> None:
    server = PgServer(tls=True)
    try:
        (server.tls_dir / pg.SERVER_KEY).unlink()
        with pytest.raises(ServerExited) as err:
            server.start()
        assert f"{server.tls_dir}/server.crt is there but server.key is missing" in err.value.log
        assert not (server.pgdata / "PG_VERSION").exists()
    finally:
        server.cleanup()


def test_non_empty_data_directory_without_a_database_is_refused() -> None:
    server = PgServer(tls=False)
    try:
        server.pgdata.mkdir(parents=True)
        (server.pgdata / "stray").write_text("x")
        with pytest.raises(ServerExited) as err:
            server.start()
        assert "is not empty but holds no database (no PG_VERSION)" in err.value.log
    finally:
        server.cleanup()
