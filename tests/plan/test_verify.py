"""Plan tests for the verify and bench wiring, offline on the real SDK.

The fake engine answers only the awaited leaves (exit code, stdout, stderr) of
the script's container, keyed by the script's name; the rest is the real plan.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import dagger
import pytest
from dagger import dag
from openfga_release import verify as wiring
from openfga_release.recipes.errors import InputError, StepError
from openfga_release.recipes.refs import PYTHON_IMAGE
from openfga_release.standalone import bench, verify

from tests.support import plan
from tests.support.engine import Answer, FakeEngine

KEY = "a-preshared-key-0123456789"
REPORT = "fga model tests against https://fga.example.com\nPASSED: 19 of 19 assertions held"


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    fake.respond("verify.py", lambda argv, ctr: Answer(stdout=REPORT))
    fake.respond("bench.py", lambda argv, ctr: Answer(stdout="PASSED: 1 objective(s) met"))
    return fake.install(monkeypatch)


def run(fn, *args, **kw):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        return await fn(*args, **kw)

    return anyio.run(go)


def secret_vars(ctr: dagger.Container) -> dict[str, dagger.Secret]:
    return {s.args["name"]: s.args["secret"] for s in plan.chain(ctr)
            if s.name == "withSecretVariable"}


def test_verify_runs_the_script_in_the_pinned_python_with_the_key_as_a_secret(
    engine: FakeEngine,
) -> None:
    token = dag.set_secret("tok", KEY)
    tests = dag.directory().with_new_file("store.fga.yaml", "name: x")
    out = run(wiring.verify, "https://fga.example.com", token, tests)
    assert out == REPORT
    (ctr,) = engine.containers("verify.py")
    assert plan.images(ctr) == [PYTHON_IMAGE]
    assert ["pip", "install", "--disable-pip-version-check", *wiring.VERIFY_REQUIREMENTS] in (
        plan.execs(ctr))
    assert all("==" in r for r in wiring.VERIFY_REQUIREMENTS)  # pinned
    script = next(s for s in plan.chain(ctr) if s.name == "withNewFile")
    assert script.args["path"] == wiring.VERIFY_SCRIPT
    assert script.args["contents"] == Path(verify.__file__).read_text()
    mounted = next(s for s in plan.chain(ctr) if s.name == "withDirectory")
    assert mounted.args["path"] == wiring.TESTS_DIR
    assert plan.execs(ctr)[-1] == verify.verify_command(
        "https://fga.example.com", wiring.TESTS_DIR, script=wiring.VERIFY_SCRIPT,
        fga=wiring.FGA_CLI)
    assert "--allow-plain-http" not in plan.execs(ctr)[-1]
    assert secret_vars(ctr) == {verify.TOKEN_ENV: token}
    assert KEY not in " ".join(plan.strings_in(ctr))  # never in argv, env or files
    assert not any(s.name == "withServiceBinding" for s in plan.chain(ctr))


def test_a_bound_service_is_reached_over_the_private_network(engine: FakeEngine) -> None:
    service = dag.container().from_("busybox:1.37.0").as_service()
    run(wiring.verify, "http://openfga:8080", dag.set_secret("tok", KEY), dag.directory(),
        service)
    (ctr,) = engine.containers("verify.py")
    binding = next(s for s in plan.chain(ctr) if s.name == "withServiceBinding")
    assert binding.args["alias"] == "openfga"
    assert "--allow-plain-http" in plan.execs(ctr)[-1]


def test_a_key_over_plain_http_to_another_host_is_refused_before_anything_runs(
    engine: FakeEngine,
) -> None:
    with pytest.raises(InputError, match="refusing to send the preshared key over plain http"):
        run(wiring.verify, "http://fga.example.com", dag.set_secret("tok", KEY), dag.directory())
    with pytest.raises(InputError, match="over plain http"):
        run(wiring.bench, "http://fga.example.com", dag.set_secret("tok", KEY), tuples=10,
            requests=1, duration=1, concurrency=1)
    assert engine.asked == []


def test_a_failed_assertion_is_a_step_error_with_the_report(engine: FakeEngine) -> None:
    report = "  FAIL check        user:bob viewer document:roadmap -> false (expected true)"
    engine.respond("verify.py", lambda argv, ctr: Answer(1, stdout=report + "\nFAILED: 1"))
    with pytest.raises(StepError) as err:
        run(wiring.verify, "https://fga.example.com", None, dag.directory())
    assert str(err.value) == "verify failed: FAILED: 1"
    assert report in err.value.detail
    engine.respond("verify.py", lambda argv, ctr: Answer(
        2, stderr="ERROR: create store: the server refused the preshared key (HTTP 401)"))
    with pytest.raises(StepError, match="verify could not run: ERROR: create store: the server "
                                        "refused the preshared key"):
        run(wiring.verify, "https://fga.example.com", None, dag.directory())


def test_bench_passes_its_limits_and_objectives(engine: FakeEngine) -> None:
    token = dag.set_secret("tok", KEY)
    out = run(wiring.bench, "https://fga.example.com", token, tuples=100_000, requests=5000,
              duration=60, concurrency=16, objectives=("check.p95_ms=25", "all.rps=100"))
    assert out == "PASSED: 1 objective(s) met"
    (ctr,) = engine.containers("bench.py")
    assert plan.images(ctr) == [PYTHON_IMAGE]
    assert plan.execs(ctr)[-1] == bench.bench_command(
        "https://fga.example.com", script=wiring.BENCH_SCRIPT, tuples=100_000, requests=5000,
        duration=60, concurrency=16, objectives=("check.p95_ms=25", "all.rps=100"))
    assert secret_vars(ctr) == {bench.TOKEN_ENV: token}
    assert KEY not in " ".join(plan.strings_in(ctr))


def test_a_missed_objective_fails_the_step(engine: FakeEngine) -> None:
    engine.respond("bench.py", lambda argv, ctr: Answer(
        1, stdout="table", stderr="MISSED: check.p95_ms = 40, objective <= 25\n"
                                  "FAILED: 1 objective(s) missed"))
    with pytest.raises(StepError, match="bench failed: FAILED: 1 objective") as err:
        run(wiring.bench, "https://fga.example.com", None, tuples=10, requests=1, duration=1,
            concurrency=1, objectives=("check.p95_ms=25",))
    assert "MISSED: check.p95_ms = 40" in err.value.detail


@pytest.mark.parametrize("kw", [
    {"requests": 0}, {"duration": 0}, {"duration": float("inf")}, {"concurrency": 0},
    {"objectives": ("check.p95=3",)},
])
def test_unbounded_runs_and_bad_objectives_are_refused_before_anything_runs(
    engine: FakeEngine, kw: dict,
) -> None:
    args = {"tuples": 10, "requests": 10, "duration": 5.0, "concurrency": 2, **kw}
    with pytest.raises(InputError):
        run(wiring.bench, "https://fga.example.com", None, **args)
    assert engine.asked == []


def test_every_verify_and_bench_run_is_a_new_exec(engine: FakeEngine) -> None:
    tests = dag.directory().with_new_file("store.fga.yaml", "name: x")
    for _ in range(2):
        run(wiring.verify, "https://fga.example.com", None, tests)
        run(wiring.bench, "https://fga.example.com", None, tuples=1000, requests=10,
            duration=5, concurrency=1)  # fmt: skip
    for script in ("verify.py", "bench.py"):
        ids = [plan.env_of(c).get(wiring.RUN_ID_ENV) for c in engine.containers(script)]
        assert len(ids) == 2 and all(ids) and ids[0] != ids[1], script
