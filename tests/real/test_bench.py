"""bench.py against the real OpenFGA: bounded by its own count and time limits, and a gate.

Nothing here asserts on wall time: which limit stopped a run is reported by the
tool itself, and an impossible objective (a p50 of 0 ms, a billion requests a
second) must fail whatever this machine's speed. The 100k-tuple runs and the
figures are in benchmarks/bench_defaults.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openfga_release.recipes.openfga import new_preshared_key
from openfga_release.standalone import bench

from tests.support.fga_stack import migrated, openfga_server
from tests.support.gobuild_local import ensure_openfga
from tests.support.openfga_local import LocalServer
from tests.support.pg import running_postgres

pytestmark = pytest.mark.integration

KEY = new_preshared_key()
BENCH_PY = Path(bench.__file__)
TUPLES = 2000  # enough for every relation of the model; the large runs are benchmarks


@pytest.fixture(scope="module")
def binary() -> str:
    return str(ensure_openfga())


@pytest.fixture(scope="module")
def memory(binary: str) -> Iterator[LocalServer]:
    with openfga_server(binary, KEY, engine="memory") as server:
        yield server


@pytest.fixture(scope="module")
def store(memory: LocalServer) -> Iterator[str]:
    """One filled store the runs below reuse (--store-id)."""
    async def fill() -> str:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=memory.url, headers=headers) as http:
            store_id, _ = await bench.setup_store(bench._Api(http), TUPLES, 1, 4)
            return store_id

    store_id = asyncio.run(fill())
    yield store_id
    httpx.delete(f"{memory.url}/stores/{store_id}",
                 headers={"Authorization": f"Bearer {KEY}"}).raise_for_status()


def run(memory: LocalServer, store: str | None, *args: str,
        token: str | None = KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != bench.TOKEN_ENV}
    if token:
        env[bench.TOKEN_ENV] = token
    extra = ["--store-id", store] if store else []
    return subprocess.run([sys.executable, str(BENCH_PY), "--url", memory.url,
                           "--tuples", str(TUPLES), *extra, *args],
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_count_limit_stops_it(memory: LocalServer, store: str) -> None:
    result = asyncio.run(bench.run_bench(memory.url, KEY, tuples=TUPLES, store_id=store,
                                         requests=30, duration=600, concurrency=4))
    assert result.stopped_by == "count"
    rows = {r["op"]: r for r in result.table()}
    assert rows["all"]["requests"] == 30 and rows["all"]["errors"] == 0
    assert [rows[op]["requests"] for op in bench.OPS] == [10, 10, 10]  # round robin
    assert rows["check"]["p50_ms"] > 0 and rows["all"]["rps"] > 0


def test_the_time_limit_stops_it(memory: LocalServer, store: str) -> None:
    result = asyncio.run(bench.run_bench(memory.url, KEY, tuples=TUPLES, store_id=store,
                                         requests=10**9, duration=1.0, concurrency=4,
                                         ops=("check",)))
    assert result.stopped_by == "time"
    rows = {r["op"]: r for r in result.table()}
    assert 0 < rows["check"]["requests"] < 10**9 and rows["check"]["errors"] == 0


def test_a_full_run_fills_a_store_and_deletes_it(memory: LocalServer) -> None:
    before = httpx.get(f"{memory.url}/stores", headers={"Authorization": f"Bearer {KEY}"})
    proc = run(memory, None, "--requests", "30", "--duration", "600", "--json")
    assert proc.returncode == bench.EXIT_OK, proc.stderr
    after = httpx.get(f"{memory.url}/stores", headers={"Authorization": f"Bearer {KEY}"})
    assert after.json()["stores"] == before.json()["stores"]  # the store it made is gone
    assert '"stopped_by": "count"' in proc.stdout and '"tuples": 2000' in proc.stdout


def test_the_setup_is_bounded_too_and_leaves_no_store(memory: LocalServer) -> None:
    before = httpx.get(f"{memory.url}/stores", headers={"Authorization": f"Bearer {KEY}"})
    # 100k tuples are 1000 write requests (and their generation alone takes longer than
    # 0.05 s): the bound must stop the setup, whatever this machine's speed.
    with pytest.raises(bench.BenchError, match=r"100000 tuples did not finish within 0\.05 s"):
        asyncio.run(bench.run_bench(memory.url, KEY, tuples=100_000, requests=1, duration=1,
                                    setup_timeout=0.05))
    after = httpx.get(f"{memory.url}/stores", headers={"Authorization": f"Bearer {KEY}"})
    assert after.json()["stores"] == before.json()["stores"]


def test_met_objectives_pass(memory: LocalServer, store: str) -> None:
    proc = run(memory, store, "--requests", "30", "--duration", "600",
               "--objective", "check.p99_ms=600000", "--objective", "all.rps=0.001")
    assert proc.returncode == bench.EXIT_OK, proc.stderr
    assert "PASSED: 2 objective(s) met" in proc.stdout
    assert "check" in proc.stdout and "p95 ms" in proc.stdout


def test_an_impossible_objective_fails_the_gate(memory: LocalServer, store: str) -> None:
    proc = run(memory, store, "--requests", "30", "--duration", "600",
               "--objective", "check.p50_ms=0", "--objective", "all.rps=1000000000",
               "--objective", "batch-check.p99_ms=600000")
    assert proc.returncode == bench.EXIT_MISSED, proc.stdout + proc.stderr
    missed = [line for line in proc.stderr.splitlines() if line.startswith("MISSED: ")]
    assert len(missed) == 2
    assert missed[0].startswith("MISSED: check.p50_ms = ") and missed[0].endswith(
        ", objective <= 0")
    assert missed[1].startswith("MISSED: all.rps = ") and missed[1].endswith(
        ", objective >= 1e+09")
    assert "FAILED: 2 objective(s) missed" in proc.stderr


def test_a_malformed_objective_stops_before_any_request(memory: LocalServer) -> None:
    proc = run(memory, None, "--requests", "30", "--duration", "600",
               "--objective", "check.p42=1")
    assert proc.returncode == bench.EXIT_ERROR
    assert "is not OP.METRIC=VALUE" in proc.stderr


def test_a_refused_key(memory: LocalServer, store: str) -> None:
    wrong = "wrong-" + KEY[:20]
    proc = run(memory, store, "--requests", "5", "--duration", "60", token=wrong)
    assert proc.returncode == bench.EXIT_ERROR
    assert "refused the preshared key (HTTP 401)" in proc.stderr
    assert wrong not in proc.stderr + proc.stdout and KEY not in proc.stderr + proc.stdout


def test_on_postgres_with_the_settings_we_ship(binary: str) -> None:
    with running_postgres() as pg, openfga_server(binary, KEY,
                                                  datastore=migrated(binary, pg)) as server:
        result = asyncio.run(bench.run_bench(server.url, KEY, tuples=TUPLES, requests=60,
                                             duration=600, concurrency=8))
    rows = {r["op"]: r for r in result.table()}
    assert result.stopped_by == "count" and rows["all"]["requests"] == 60
    assert rows["all"]["errors"] == 0, result.text()
