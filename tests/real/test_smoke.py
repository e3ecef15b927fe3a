"""The smoke test against the real OpenFGA binary (memory datastore, preshared keys).

The server is started with the same environment ``test-e2e`` gives the service
(openfga_server.server_env), only on free loopback ports and the memory engine;
the Postgres-backed run is in test_migrate_pg.py.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openfga_release.recipes.openfga import (
    PRESHARED_KEYS_ENV,
    new_preshared_key,
)
from openfga_release.standalone import smoke
from openfga_release.standalone.smoke import SmokeError, run_smoke

from tests.support.gobuild_local import ensure_openfga
from tests.support.net import free_port
from tests.support.openfga_local import LocalServer, run_local

KEY = new_preshared_key()
OTHER_KEY = new_preshared_key()
STEPS = [
    "health", "create-store", "write-model", "write-tuples", "check-allowed", "check-denied",
    "check-computed", "list-objects", "delete-store",
]
SMOKE_PY = Path(smoke.__file__)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    keys = f"{OTHER_KEY},{KEY}"  # the second of two keys must work too
    with run_local(str(ensure_openfga()), {PRESHARED_KEYS_ENV: keys}, engine="memory") as srv:
        yield srv


def _stores(server: LocalServer) -> list[dict]:
    resp = httpx.get(f"{server.url}/stores", headers={"Authorization": f"Bearer {KEY}"})
    resp.raise_for_status()
    return resp.json()["stores"]


def test_smoke_passes_and_cleans_up(server: LocalServer) -> None:
    report = asyncio.run(run_smoke(server.url, KEY))
    assert [s.name for s in report.steps] == STEPS
    assert report.store_id and report.model_id and report.cleaned_up
    assert report.steps[4].detail == "allowed=true" and report.steps[5].detail == "allowed=false"
    assert report.store_id not in {s["id"] for s in _stores(server)}
    gone = httpx.get(
        f"{server.url}/stores/{report.store_id}", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert gone.status_code == 404
    assert "smoke test passed" in report.summary()


def test_trailing_slash_and_keep_store(server: LocalServer) -> None:
    report = asyncio.run(run_smoke(server.url + "/", KEY, keep_store=True))
    assert not report.cleaned_up
    assert report.store_id in {s["id"] for s in _stores(server)}
    httpx.delete(
        f"{server.url}/stores/{report.store_id}", headers={"Authorization": f"Bearer {KEY}"}
    ).raise_for_status()


def test_wrong_key_names_the_step_and_the_answer(server: LocalServer) -> None:
    wrong = "not-the-key-" + KEY[:8]
    with pytest.raises(SmokeError) as err:
        asyncio.run(run_smoke(server.url, wrong))
    e = err.value
    # /healthz needs no key, so the first refused step is the first authenticated one.
    assert (e.step, e.status) == ("create-store", 401)
    assert '"code":"unauthenticated"' in e.body
    assert "preshared key" in str(e) and "'create-store'" in str(e)
    assert wrong not in str(e) and KEY not in str(e)


def test_missing_key_is_reported(server: LocalServer) -> None:
    with pytest.raises(SmokeError) as err:
        asyncio.run(run_smoke(server.url, None))
    assert err.value.status == 401
    assert "bearer_token_missing" in err.value.body


def test_nothing_listening_fails_at_health() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SmokeError) as err:
        asyncio.run(run_smoke(url, KEY, timeout=5))
    assert (err.value.step, err.value.status) == ("health", None)
    assert "ConnectError" in err.value.body and url in str(err.value)


def test_a_rejected_model_names_the_step_and_still_deletes_the_store(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without directly_related_user_types a 1.1 model is invalid: the server says so.
    bad = json.loads(json.dumps(smoke.MODEL))
    del bad["type_definitions"][1]["metadata"]
    monkeypatch.setattr(smoke, "MODEL", bad)
    before = {s["id"] for s in _stores(server)}
    with pytest.raises(SmokeError) as err:
        asyncio.run(run_smoke(server.url, KEY))
    assert (err.value.step, err.value.status) == ("write-model", 400)
    assert "invalid_authorization_model" in err.value.body
    assert {s["id"] for s in _stores(server)} == before  # the store it made is gone


def test_a_wrong_check_answer_fails_the_step(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ask the real server a question whose true answer is "denied" but expect "allowed".
    name, key, _ = smoke.CHECKS[1]
    monkeypatch.setattr(smoke, "CHECKS", [(name, key, True)])
    with pytest.raises(SmokeError) as err:
        asyncio.run(run_smoke(server.url, KEY))
    assert (err.value.step, err.value.status) == ("check-denied", 200)
    assert '"allowed": false' in err.value.body and "expected allowed=true" in str(err.value)


def test_smoke_error_text_is_bounded() -> None:
    err = SmokeError("write-tuples", 500, "x" * 5000)
    assert len(err.body) == smoke.BODY_LIMIT
    assert str(err).startswith("smoke step 'write-tuples' failed: HTTP 500: xxx")


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != smoke.TOKEN_ENV}
    return subprocess.run(args, env={**base, **env}, capture_output=True, text=True, timeout=120)


def test_cli_as_module_reads_the_key_from_the_environment(server: LocalServer) -> None:
    module = [sys.executable, "-m", "openfga_release.standalone.smoke", "--url", server.url]
    ok = _cli(module, {"FGA_TOKEN": KEY})
    assert ok.returncode == 0, ok.stderr
    assert "smoke test passed" in ok.stdout and "list-objects" in ok.stdout
    assert KEY not in ok.stdout + ok.stderr

    bad = _cli(module, {"FGA_TOKEN": "nope"})
    assert bad.returncode == 1
    # (python -m imports the package first, which may warn on stderr before our line)
    assert any(
        line.startswith("FAILED: smoke step 'create-store' failed: HTTP 401")
        for line in bad.stderr.splitlines()
    )


def test_cli_as_a_lone_script_in_an_empty_directory(server: LocalServer, tmp_path: Path) -> None:
    # What the Dagger function does: copy the one file into a container and run it.
    script = tmp_path / "smoke.py"
    script.write_text(SMOKE_PY.read_text())
    env = {"MY_KEY": KEY, "PYTHONPATH": ""}
    run = _cli(
        [sys.executable, "-I", str(script), "--url", server.url, "--token-env", "MY_KEY", "--json"],
        env,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert [s["name"] for s in report["steps"]] == STEPS
    assert report["cleaned_up"] is True


def test_the_script_needs_only_the_standard_library_and_httpx() -> None:
    tree = ast.parse(SMOKE_PY.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import would break `python smoke.py`"
            roots.add((node.module or "").split(".")[0])
    assert roots - sys.stdlib_module_names - {"__future__"} == {"httpx"}


def test_health_wait_covers_a_server_that_is_still_starting() -> None:
    binary = str(ensure_openfga())
    with run_local(binary, {PRESHARED_KEYS_ENV: KEY}, engine="memory", wait=False) as srv:
        # Started this instant: /healthz may not answer yet; the smoke test waits for it.
        report = asyncio.run(run_smoke(srv.url, KEY, health_wait=30))
    assert report.cleaned_up and report.steps[0].name == "health"
