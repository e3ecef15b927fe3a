"""``openfga run``'s environment and readiness wait, with the real binary (memory engine).

The Postgres-backed cases (NOT_SERVING on an unmigrated database, the app
role) are in test_migrate_pg.py.
"""

from __future__ import annotations

import json

import httpx
import pytest
from openfga_release.recipes import migrate
from openfga_release.recipes.openfga import (
    PRESHARED_KEYS_ENV,
    RUN_MIGRATE,
    SECRET_ENV,
    Health,
    ServerNotReady,
    explain_not_ready,
    new_preshared_key,
    preshared_keys_value,
    server_command,
    server_env,
    wait_ready,
)

from tests.support.gobuild_local import ensure_openfga
from tests.support.net import free_port
from tests.support.openfga_local import run_local


def test_env_is_least_privilege_and_holds_no_secret() -> None:
    env = server_env()
    assert env["OPENFGA_AUTHN_METHOD"] == "preshared"
    assert env["OPENFGA_PLAYGROUND_ENABLED"] == "false"
    assert env["OPENFGA_LOG_FORMAT"] == "json"
    assert env["OPENFGA_DATASTORE_ENGINE"] == "postgres"
    assert env["OPENFGA_HTTP_ADDR"] == "0.0.0.0:8080"
    assert env["OPENFGA_GRPC_ADDR"] == "0.0.0.0:8081"
    assert env["OPENFGA_METRICS_ADDR"] == "0.0.0.0:2112"
    assert not set(env) & set(SECRET_ENV)
    assert set(SECRET_ENV) == {
        "OPENFGA_DATASTORE_URI", "OPENFGA_DATASTORE_PASSWORD", "OPENFGA_AUTHN_PRESHARED_KEYS"
    }
    assert server_command() == ["/usr/bin/openfga", "run"]


def test_preshared_keys() -> None:
    a, b = new_preshared_key(), new_preshared_key()
    assert a != b and len(a) >= 40
    assert preshared_keys_value([a, b]) == f"{a},{b}"
    for bad in (["short"], [a + ",x"], [a + " x"], []):
        with pytest.raises(ValueError) as err:
            preshared_keys_value(bad)
        assert a not in str(err.value)



@pytest.mark.integration
def test_server_starts_with_the_env_and_logs_json() -> None:
    key = new_preshared_key()
    with run_local(str(ensure_openfga()), {PRESHARED_KEYS_ENV: key}, engine="memory") as srv:
        assert httpx.get(f"{srv.url}/healthz").json() == {"status": "SERVING"}
        assert httpx.get(f"{srv.url}/stores").status_code == 401  # authn is on
        ok = httpx.get(f"{srv.url}/stores", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        records = [json.loads(line) for line in srv.logs().splitlines() if line.strip()]
        assert any(r.get("msg") == "using 'preshared' authentication" for r in records)
        config = next(r["config"] for r in records if "config" in r)
        assert config["Playground"]["Enabled"] is False
        assert config["Authn"]["Method"] == "preshared"
        assert key not in srv.logs()
        proc = srv.process
    assert proc.poll() is not None  # stopped on exit


@pytest.mark.integration
def test_a_server_that_exits_is_reported_with_its_reason() -> None:
    # OpenFGA refuses the playground with any authn but none: it exits at start.
    env = {PRESHARED_KEYS_ENV: new_preshared_key(), "OPENFGA_PLAYGROUND_ENABLED": "true"}
    with pytest.raises(ServerNotReady) as err, run_local(
        str(ensure_openfga()), env, engine="memory", ready_timeout=60
    ):
        pass
    assert str(err.value).startswith("openfga run exited with code 2: the playground cannot run")
    assert "OPENFGA_PLAYGROUND_ENABLED" in str(err.value)


@pytest.mark.integration
def test_wait_ready_is_bounded_when_nothing_answers() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerNotReady, match=r"is not ready \(DOWN\): nothing answered /healthz"):
        wait_ready(url, timeout=1.5)


def test_unsafe_env_is_what_migrate_and_run_must_not_inherit() -> None:
    # The server's environment is rebuilt from nothing OPENFGA_-prefixed, like migrate's.
    base = {"OPENFGA_VERSION": "3", "OPENFGA_DATASTORE_PASSWORD": "x", "HOME": "/root"}
    assert migrate.clean_env(base, **server_env()) == {"HOME": "/root", **server_env()}


# /healthz answers of the real server (see test_migrate_pg.py for them live).
NOT_SERVING = Health("NOT_SERVING", "status:NOT_SERVING")
NEVER_MIGRATED = Health(
    "ERROR",
    'ERROR: relation "goose_db_version" does not exist (SQLSTATE 42P01); '
    "ERROR: permission denied for schema public (SQLSTATE 42501)",
)
DB_GONE = Health(
    "ERROR",
    "failed to connect to `user=openfga_app database=openfga`: 127.0.0.1:52365 (127.0.0.1): "
    "dial error: dial tcp 127.0.0.1:52365: connect: connection refused",
)
REV3_LOG = (
    '{"level":"warn","msg":"HTTP TLS is disabled, serving connections using insecure plaintext"}\n'
    '{"level":"warn","msg":"datastore is not ready","status":"datastore requires migrations: '
    "at revision '3', but requires '4'. Run 'openfga migrate'.\"}\n"
)


def test_not_ready_explanations() -> None:
    assert explain_not_ready(NOT_SERVING, REV3_LOG) == RUN_MIGRATE + " (found revision 3)"
    assert explain_not_ready(NOT_SERVING) == RUN_MIGRATE
    assert explain_not_ready(NEVER_MIGRATED) == RUN_MIGRATE
    assert "nothing accepts connections at the database" in explain_not_ready(DB_GONE)
    waiting = '{"level":"info","msg":"waiting for database","attempt":3}\n'
    assert "waiting for its database" in explain_not_ready(Health("DOWN", "ConnectError"), waiting)
    assert "nothing answered /healthz" in explain_not_ready(Health("DOWN", "ConnectError"))
