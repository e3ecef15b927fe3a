"""Migrate, serve and smoke-test with the real OpenFGA binary on the project's PostgreSQL.

PostgreSQL is started by tests/support/pg.py with images/postgres (hardened
pg_hba: TLS + scram only; roles openfga_owner/_migrator/_app/_readonly). This
module owns its server (it migrates, downgrades and drops tables), so it does
not touch the shared session server. Every OpenFGA URI is built by dsn.Dsn.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from openfga_release.recipes import migrate
from openfga_release.recipes.dsn import Dsn
from openfga_release.recipes.migrate import PASSWORD_ENV, URI_ENV, MigrateError, read_revision
from openfga_release.recipes.openfga import (
    PRESHARED_KEYS_ENV,
    RUN_MIGRATE,
    ServerNotReady,
    new_preshared_key,
    wait_ready,
)
from openfga_release.recipes.releases import DEFAULT_VERSION
from openfga_release.standalone.smoke import SmokeError, run_smoke
from psycopg import sql

from tests.support import migrate_local
from tests.support.gobuild_local import ensure_openfga
from tests.support.net import free_port
from tests.support.openfga_local import run_local
from tests.support.pg import PgServer, running_postgres

pytestmark = pytest.mark.integration

LATEST = 6  # the newest schema revision OpenFGA v1.22.1 ships
# Every character that breaks an unencoded URI, plus space, '+', '&' and non-ASCII.
NASTY_PASSWORD = "N@sty:pa ss/w?rd#50%&x=+é"
KEY = new_preshared_key()
BOUND = 90  # generous ceiling for "did not hang" checks, far above the timeouts used


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def binary() -> str:
    return str(ensure_openfga())


@pytest.fixture
def empty(pg: PgServer) -> PgServer:
    """The database as init SQL left it: no OpenFGA tables (default privileges stay)."""
    with pg.superuser() as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        for (name,) in tables:
            conn.execute(f'DROP TABLE IF EXISTS public."{name}" CASCADE')
    return pg


def dsn(pg: PgServer, who: str, password: str | None = None, **kw: Any) -> Dsn:
    pw = pg.passwords[who] if password is None else password
    return Dsn(
        host=pg.host, port=pg.port, database=pg.names.database, user=pg.role(who),
        password=pw, **kw,
    )


def set_password(pg: PgServer, role: str, password: str) -> None:
    with pg.superuser() as conn:
        conn.execute("SET log_statement = 'none'")  # the statement carries a password
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )


def uri_env(d: Dsn) -> dict[str, str]:
    return {URI_ENV: d.secret_uri()}


def revision(pg: PgServer) -> int:
    with pg.connect("readonly") as conn:
        return read_revision(conn)


def tables(pg: PgServer) -> dict[str, str]:
    with pg.superuser() as conn:
        rows = conn.execute(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return dict(rows)


def run_migrate(binary: str, env: dict[str, str], **kw: Any) -> migrate.MigrateReport:
    return migrate_local.run_local(binary, env, connect_timeout=kw.pop("connect_timeout", 3), **kw)


# ------------------------------------------------------------------ migrate


def test_migrate_twice_reaches_the_same_revision(empty: PgServer, binary: str) -> None:
    env = uri_env(dsn(empty, "migrator", sslmode="require"))
    first = run_migrate(binary, env)
    assert (first.before, first.revision, first.changed) == (0, LATEST, True)
    assert revision(empty) == LATEST
    second = run_migrate(binary, env)
    assert (second.before, second.revision, second.changed) == (LATEST, LATEST, False)
    assert revision(empty) == LATEST
    # Made by the migrator, owned by the NOLOGIN owner.
    owned = tables(empty)
    assert {"store", "tuple", "authorization_model", "goose_db_version"} <= set(owned)
    assert set(owned.values()) == {"openfga_owner"}


def test_migrate_to_a_revision_only_when_asked(empty: PgServer, binary: str) -> None:
    env = uri_env(dsn(empty, "migrator"))
    assert run_migrate(binary, env, version=3).revision == 3
    assert revision(empty) == 3
    assert run_migrate(binary, env).revision == LATEST  # no --version: the newest


def test_verify_full_with_the_servers_ca(empty: PgServer, binary: str) -> None:
    assert empty.ca_file is not None
    d = dsn(empty, "migrator", sslmode="verify-full", params={"sslrootcert": str(empty.ca_file)})
    assert run_migrate(binary, uri_env(d)).revision == LATEST


def test_a_stray_openfga_version_is_stripped(empty: PgServer, binary: str) -> None:
    env = uri_env(dsn(empty, "migrator"))
    run_migrate(binary, env)
    # The hazard, shown with the raw binary: viper turns OPENFGA_VERSION into --version.
    raw = subprocess.run(
        migrate.migrate_command(binary=binary, connect_timeout=3),
        env={**os.environ, **env, "OPENFGA_VERSION": "2"},
        capture_output=True, text=True, timeout=120,
    )
    assert raw.returncode == 0, raw.stderr
    assert revision(empty) == 2  # migrated DOWN by an env var
    # The pipeline's runner removes it: the schema goes up, never down.
    report = run_migrate(binary, env, base_env={**os.environ, "OPENFGA_VERSION": "1"})
    assert (report.before, report.revision) == (2, LATEST)


# ---------------------------------------------------- passwords and roles


@pytest.mark.parametrize("mode", ["in the URI", "as OPENFGA_DATASTORE_PASSWORD"])
def test_a_password_with_special_characters_works(
    empty: PgServer, binary: str, mode: str
) -> None:
    set_password(empty, "openfga_migrator", NASTY_PASSWORD)
    try:
        d = dsn(empty, "migrator", password=NASTY_PASSWORD)
        if mode == "in the URI":
            env = uri_env(d)
        else:  # the URI holds no secret; OpenFGA's password override carries it
            env = {URI_ENV: d.public_uri(), PASSWORD_ENV: NASTY_PASSWORD}
        assert run_migrate(binary, env).revision == LATEST
    finally:
        set_password(empty, "openfga_migrator", empty.passwords["migrator"])


def test_wrong_password_is_named_without_the_password(empty: PgServer, binary: str) -> None:
    wrong = "Wr0ng:p@ss/word"
    env = uri_env(dsn(empty, "migrator", password=wrong))
    with pytest.raises(MigrateError) as err:
        run_migrate(binary, env)
    assert str(err.value).startswith("PostgreSQL refused the password for role openfga_migrator")
    text = str(err.value) + err.value.detail
    assert wrong not in text and "Wr0ng" not in text
    assert "SQLSTATE 28P01" in err.value.detail


def test_the_app_role_cannot_migrate_an_empty_database(empty: PgServer, binary: str) -> None:
    with pytest.raises(MigrateError, match="run migrate as openfga_migrator") as err:
        run_migrate(binary, uri_env(dsn(empty, "app")))
    assert "permission denied for schema public" in err.value.detail
    assert tables(empty) == {}


def test_the_app_role_cannot_apply_pending_migrations(empty: PgServer, binary: str) -> None:
    run_migrate(binary, uri_env(dsn(empty, "migrator")), version=5)
    with pytest.raises(MigrateError, match="run migrate as openfga_migrator") as err:
        run_migrate(binary, uri_env(dsn(empty, "app")))
    assert "must be owner of table tuple" in err.value.detail
    assert revision(empty) == 5


def test_the_app_role_is_refused_by_name_before_anything_runs() -> None:
    # When the schema is current a migrate is a no-op that even openfga_app could
    # "pass"; the pipeline refuses the role by name (host/db/user mode).
    with pytest.raises(migrate.MigrateInputError, match="openfga_app may not run migrations"):
        migrate.check_migrator_user("openfga_app")


# ---------------------------------------------------------- database down


def test_database_down_fails_fast_and_clearly(binary: str) -> None:
    d = Dsn(host="127.0.0.1", port=free_port(), database="openfga", user="openfga_migrator",
            password="irrelevant-pw", sslmode="require", connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(MigrateError, match="nothing accepts connections"):
        run_migrate(binary, uri_env(d), connect_timeout=3, timeout=60)
    assert time.monotonic() - started < BOUND


def test_a_database_that_never_answers_does_not_hang(binary: str) -> None:
    # A listener that never accepts: the TCP handshake succeeds, then silence.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        d = Dsn(host="127.0.0.1", port=silent.getsockname()[1], database="openfga",
                user="openfga_migrator", password="irrelevant-pw", sslmode="require",
                connect_timeout=2)
        started = time.monotonic()
        with pytest.raises(MigrateError, match="did not answer before the timeout"):
            run_migrate(binary, uri_env(d), connect_timeout=3, timeout=60)
        assert time.monotonic() - started < BOUND


def test_server_with_its_database_down_is_bounded(binary: str) -> None:
    d = Dsn(host="127.0.0.1", port=free_port(), database="openfga", user="openfga_app",
            password="irrelevant-pw", sslmode="require", connect_timeout=2)
    with pytest.raises(ServerNotReady, match="waiting for its database"), run_local(
        binary, {**uri_env(d), PRESHARED_KEYS_ENV: KEY}, ready_timeout=3
    ):
        pass


# ------------------------------------------------------------- the server


def test_server_as_openfga_app_passes_the_smoke_test(empty: PgServer, binary: str) -> None:
    run_migrate(binary, uri_env(dsn(empty, "migrator")))
    app = dsn(empty, "app")
    with run_local(binary, {**uri_env(app), PRESHARED_KEYS_ENV: KEY}) as server:
        report = asyncio.run(run_smoke(server.url, KEY))
        assert report.cleaned_up and len(report.steps) == 9
        with empty.superuser() as conn:
            users = conn.execute(
                "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = %s "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                [empty.names.database],
            ).fetchall()
        assert {u for (u,) in users} == {"openfga_app"}
        assert app.password is not None and app.password not in server.logs()


def test_password_override_for_the_server(empty: PgServer, binary: str) -> None:
    run_migrate(binary, uri_env(dsn(empty, "migrator")))
    app = dsn(empty, "app")
    env = {URI_ENV: app.public_uri(), PASSWORD_ENV: empty.passwords["app"], PRESHARED_KEYS_ENV: KEY}
    with run_local(binary, env) as server:
        assert asyncio.run(run_smoke(server.url, KEY)).cleaned_up


def test_unmigrated_database_says_run_migrate(empty: PgServer, binary: str) -> None:
    env = {**uri_env(dsn(empty, "app")), PRESHARED_KEYS_ENV: KEY}
    with pytest.raises(ServerNotReady) as err, run_local(binary, env, not_serving_grace=2):
        pass
    assert RUN_MIGRATE in str(err.value)
    # The smoke test run against such a server says the same thing.
    with run_local(binary, env, wait=False) as server, pytest.raises(SmokeError) as smoke_err:
        asyncio.run(run_smoke(server.url, KEY, health_wait=3))
    assert smoke_err.value.step == "health" and smoke_err.value.status == 500
    assert "run migrate" in str(smoke_err.value)


def test_schema_below_revision_4_is_not_serving(empty: PgServer, binary: str) -> None:
    run_migrate(binary, uri_env(dsn(empty, "migrator")), version=3)
    env = {**uri_env(dsn(empty, "app")), PRESHARED_KEYS_ENV: KEY}
    with pytest.raises(ServerNotReady) as err, run_local(binary, env, not_serving_grace=2):
        pass
    assert "(NOT_SERVING)" in str(err.value)
    assert str(err.value).endswith(RUN_MIGRATE + " (found revision 3)")


def test_server_with_a_wrong_password_is_bounded(empty: PgServer, binary: str) -> None:
    run_migrate(binary, uri_env(dsn(empty, "migrator")))
    wrong = dsn(empty, "app", password="Not-the-app-pw:1")
    with pytest.raises(ServerNotReady) as err, run_local(
        binary, {**uri_env(wrong), PRESHARED_KEYS_ENV: KEY}, ready_timeout=3
    ):
        pass
    assert "waiting for its database" in str(err.value)
    assert "Not-the-app-pw" not in str(err.value)


def test_database_going_down_under_a_running_server(empty: PgServer, binary: str) -> None:
    run_migrate(binary, uri_env(dsn(empty, "migrator")))
    env = {**uri_env(dsn(empty, "app")), PRESHARED_KEYS_ENV: KEY}
    with run_local(binary, env) as server:
        empty.stop()
        try:
            with pytest.raises(ServerNotReady) as err:
                wait_ready(server.url, timeout=20, not_serving_grace=1, logs=server.logs)
        finally:
            empty.start()
    assert "(ERROR)" in str(err.value)
    assert "nothing accepts connections at the database host and port" in str(err.value)


# ------------------------------------------------------------------ the downgrade guard


DROP_INDEX = r"DROP INDEX (?:CONCURRENTLY )?(?:IF EXISTS )?(\w+)"
DROP_COLUMNS = r"ALTER TABLE (\w+) (DROP COLUMN \w+(?:, DROP COLUMN \w+)*)"


def _down_drops_in(sql_text: str) -> set[tuple[str, str]]:
    """What a migration's ``-- +goose Down`` section drops, read from its SQL."""
    down = sql_text.split("-- +goose Down", 1)[1]
    drops: set[tuple[str, str]] = set()
    for statement in down.split(";"):
        words = " ".join(statement.split())
        if found := re.fullmatch(r"DROP TABLE (?:IF EXISTS )?(\w+)", words, re.I):
            drops.add(("table", found[1]))
        elif found := re.fullmatch(DROP_INDEX, words, re.I):
            drops.add(("index", found[1]))
        elif found := re.fullmatch(DROP_COLUMNS, words, re.I):
            for column in re.findall(r"DROP COLUMN (\w+)", found[2], re.I):
                drops.add(("column", f"{found[1]}.{column}"))
        else:
            assert not re.search(r"\bDROP\b", words, re.I), f"an unread DROP: {words}"
    return drops


def test_the_down_steps_table_matches_openfga_v1_22_1s_migrations() -> None:
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"github.com/openfga/openfga@{DEFAULT_VERSION}"],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    migrations = Path(json.loads(out.stdout)["Dir"]) / "assets/migrations/postgres"
    files = sorted(migrations.glob("*.sql"))
    found = {int(f.name[:3]): _down_drops_in(f.read_text()) for f in files}
    assert len(found) == LATEST
    assert found == {rev: set(drops) for rev, drops in migrate.DOWN_DROPS.items()}


def probe_local(d: Dsn, tmp: Path, ca_bundle: str = "/etc/ssl/certs/ca-certificates.crt") -> int:
    """The probe the migrate function runs, with the same argv and env, Debian's psql."""
    script = tmp / "revision.sql"
    script.write_text(migrate.PROBE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in migrate.PROBE_UNSAFE_ENV}
    env |= migrate.probe_env(d, ca_bundle=ca_bundle)
    env[migrate.PROBE_URI_ENV] = d.secret_uri()
    ran = subprocess.run(
        migrate.probe_command(str(script)), env=env, capture_output=True, text=True, timeout=60
    )
    return migrate.check_probe(ran.returncode, ran.stdout, ran.stderr, [d.password or ""])


def guarded(binary: str, d: Dsn, tmp: Path, target: int, allow: bool) -> migrate.MigrateReport:
    """What the migrate function does with a target: probe, guard, then migrate."""
    downgraded = migrate.check_downgrade(probe_local(d, tmp), target, allow)
    return replace(run_migrate(binary, uri_env(d), version=target), downgraded=downgraded)


def columns(pg: PgServer, table: str) -> set[str]:
    with pg.superuser() as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
        ).fetchall()
    return {name for (name,) in rows}


def test_the_probe_reads_the_revision_as_the_migrator(
    empty: PgServer, binary: str, tmp_path: Path
) -> None:
    d = dsn(empty, "migrator")
    assert probe_local(d, tmp_path) == 0  # no goose_db_version yet
    run_migrate(binary, uri_env(d), version=3)
    assert probe_local(d, tmp_path) == 3
    verified = dsn(
        empty, "migrator", sslmode="verify-full", params={"sslrootcert": str(empty.ca_file)}
    )
    run_migrate(binary, uri_env(d))
    assert probe_local(verified, tmp_path) == LATEST == revision(empty)
    # verify-full without sslrootcert: pgx trusts the system roots, the probe the
    # bundle OpenFGA's image carries (here the test CA stands in for it).
    system = dsn(empty, "migrator", sslmode="verify-full")
    assert probe_local(system, tmp_path, ca_bundle=str(empty.ca_file)) == LATEST
    with pytest.raises(MigrateError, match=r"TLS handshake|certificate"):
        probe_local(system, tmp_path)  # Debian's bundle does not know the test CA


def test_a_downgrade_is_refused_unless_allowed(
    empty: PgServer, binary: str, tmp_path: Path
) -> None:
    d = dsn(empty, "migrator")
    run_migrate(binary, uri_env(d))
    assert probe_local(d, tmp_path) == LATEST
    with pytest.raises(migrate.DowngradeError) as err:
        guarded(binary, d, tmp_path, 4, allow=False)
    message = str(err.value)
    assert f"current schema revision {LATEST}" in message and "--allow-downgrade" in message
    assert "tuple.condition_name" in message and empty.passwords["migrator"] not in message
    # Nothing changed.
    assert revision(empty) == LATEST
    assert {"condition_name", "condition_context"} <= columns(empty, "tuple")
    assert {"condition_name", "condition_context"} <= columns(empty, "changelog")

    report = guarded(binary, d, tmp_path, 4, allow=True)
    assert (report.before, report.revision) == (LATEST, 4)
    assert "DOWNGRADE" in report.summary() and "changelog.condition_name" in report.summary()
    assert revision(empty) == probe_local(d, tmp_path) == 4
    assert not {"condition_name", "condition_context"} & columns(empty, "tuple")
    # Back up: an upgrade needs no permission.
    assert guarded(binary, d, tmp_path, LATEST, allow=False).revision == LATEST
