"""A bounded load generator for any OpenFGA server, that can gate a release.

Single file, standard library plus httpx (pinned by the callers), importing
nothing from the package:

    FGA_TOKEN=... python bench.py --url https://fga.example.com --tuples 100000 \\
        --requests 20000 --duration 60 --concurrency 16 \\
        --objective check.p95_ms=25 --objective check.rps=500

What it does:

1. **Setup** (skipped with ``--store-id`` of a store it filled before): a new
   store, the model :data:`MODEL_DSL` (as JSON: nested usersets, tuple-to-userset
   over two hops, exclusion, intersection, a condition) and ``--tuples``
   generated tuples (deterministic from ``--seed``), written 100 per request,
   ``--write-concurrency`` requests at a time.
2. **Load**: ``--concurrency`` workers send check, batch-check and
   list-objects requests (``--ops``, round robin) about generated users and
   documents, true and false answers mixed, until ``--requests`` requests
   (the count limit) or ``--duration`` seconds (the time limit) -- whichever
   comes first; ``--warmup`` requests before that are not counted.
3. **Report**: requests, errors, throughput and p50/p95/p99 per operation.
4. **Gate**: each ``--objective OP.METRIC=VALUE`` (OP: check, batch-check,
   list-objects or all; METRIC: p50_ms, p95_ms, p99_ms as maxima, rps as a
   minimum, errors as a maximum count) is compared with the result; any miss
   prints one line per objective and exits 1. Errors beyond ``--max-errors``
   (default 0) fail too.

The store is deleted afterwards unless ``--keep-store``. The key comes only
from ``FGA_TOKEN`` (``--token-env``) and is never printed; as in verify.py it
is never sent over plain http to a host other than loopback unless
``--allow-plain-http``. Exit codes: 0 objectives met, 1 an objective missed,
2 could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import itertools
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

TOKEN_ENV = "FGA_TOKEN"  # noqa: S105 (a variable name, not a secret)
WRITE_CHUNK = 100  # tuples per write: OpenFGA's default --max-tuples-per-write
BATCH_SIZE = 20  # checks per batch-check request
SETUP_TIMEOUT = 900.0  # seconds to write the generated tuples
OPS = ("check", "batch-check", "list-objects")
METRICS = ("p50_ms", "p95_ms", "p99_ms", "rps", "errors")
EXIT_OK, EXIT_MISSED, EXIT_ERROR = 0, 1, 2
BODY_LIMIT = 300

MODEL_DSL = """\
model
  schema 1.1

type user

type team
  relations
    define member: [user, team#member]

type folder
  relations
    define parent: [folder]
    define viewer: [user, team#member] or viewer from parent

type document
  relations
    define folder: [folder]
    define owner: [user]
    define blocked: [user, team#member]
    define editor: [user, user with non_expired, team#member]
    define viewer: ([user, team#member] or editor or owner or viewer from folder) but not blocked
    define can_share: viewer and editor

condition non_expired(current_time: timestamp, expires_at: timestamp) {
  current_time < expires_at
}
"""


def _this() -> dict[str, Any]:
    return {"this": {}}


def _computed(relation: str) -> dict[str, Any]:
    return {"computedUserset": {"relation": relation}}


def _ttu(tupleset: str, relation: str) -> dict[str, Any]:
    return {"tupleToUserset": {"tupleset": {"relation": tupleset},
                               "computedUserset": {"relation": relation}}}


def _types(*refs: str) -> dict[str, Any]:
    """``directly_related_user_types`` from DSL-like refs: ``user``, ``team#member``,
    ``user with non_expired``."""
    out = []
    for ref in refs:
        ref, _, condition = ref.partition(" with ")
        kind, _, relation = ref.partition("#")
        item: dict[str, Any] = {"type": kind}
        if relation:
            item["relation"] = relation
        if condition:
            item["condition"] = condition
        out.append(item)
    return {"directly_related_user_types": out}


# MODEL_DSL as the API's JSON (a unit test checks it with `fga model transform`).
MODEL: dict[str, Any] = {
    "schema_version": "1.1",
    "type_definitions": [
        {"type": "user"},
        {"type": "team", "relations": {"member": _this()},
         "metadata": {"relations": {"member": _types("user", "team#member")}}},
        {"type": "folder",
         "relations": {"parent": _this(),
                       "viewer": {"union": {"child": [_this(), _ttu("parent", "viewer")]}}},
         "metadata": {"relations": {"parent": _types("folder"),
                                    "viewer": _types("user", "team#member")}}},
        {"type": "document",
         "relations": {
             "folder": _this(), "owner": _this(), "blocked": _this(), "editor": _this(),
             "viewer": {"difference": {
                 "base": {"union": {"child": [_this(), _computed("editor"), _computed("owner"),
                                              _ttu("folder", "viewer")]}},
                 "subtract": _computed("blocked")}},
             "can_share": {"intersection": {"child": [_computed("viewer"),
                                                      _computed("editor")]}},
         },
         "metadata": {"relations": {
             "folder": _types("folder"), "owner": _types("user"),
             "blocked": _types("user", "team#member"),
             "editor": _types("user", "user with non_expired", "team#member"),
             "viewer": _types("user", "team#member"), "can_share": {},
         }}},
    ],
    "conditions": {
        "non_expired": {
            "name": "non_expired",
            "expression": "current_time < expires_at",
            "parameters": {"current_time": {"type_name": "TYPE_NAME_TIMESTAMP"},
                           "expires_at": {"type_name": "TYPE_NAME_TIMESTAMP"}},
        },
    },
}


class BenchError(Exception):
    """The benchmark could not run: ``str()`` says why and what to do."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Shape:
    """Entity counts for a target number of tuples (~4.4 tuples per document)."""

    documents: int
    folders: int
    teams: int
    users: int

    @classmethod
    def for_tuples(cls, tuples: int) -> Shape:
        docs = max(10, tuples * 10 // 44)
        return cls(documents=docs, folders=max(5, docs // 20), teams=max(5, docs // 50),
                   users=max(20, docs // 2))


FUTURE, PAST = "2999-01-01T00:00:00Z", "2000-01-01T00:00:00Z"


def generate(tuples: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Exactly ``tuples`` distinct tuples, the same for the same seed: teams (nested three deep), a
    folder tree (four levels), documents with owners, editors (a quarter conditional, half
    of those expired), viewer teams and some blocked users."""
    shape = Shape.for_tuples(tuples)
    rnd = random.Random(seed)  # noqa: S311 (test data, not secrets)

    def t(user: str, relation: str, obj: str, condition: dict[str, Any] | None = None) -> Any:
        key: dict[str, Any] = {"user": user, "relation": relation, "object": obj}
        if condition:
            key["condition"] = condition
        return key

    def stream() -> Iterator[dict[str, Any]]:
        for i in range(shape.teams):
            for _ in range(5):
                yield t(f"user:{rnd.randrange(shape.users)}", "member", f"team:{i}")
            if i >= 3 and i % 3 == 0:  # team i includes an earlier team: nesting
                yield t(f"team:{rnd.randrange(i // 3, i)}#member", "member", f"team:{i}")
        for f in range(shape.folders):
            if f >= 4:  # a tree: parent index f // 4 (depth ~log4)
                yield t(f"folder:{f // 4}", "parent", f"folder:{f}")
            yield t(f"team:{rnd.randrange(shape.teams)}#member", "viewer", f"folder:{f}")
            if f % 5 == 0:
                yield t(f"user:{rnd.randrange(shape.users)}", "viewer", f"folder:{f}")
        for d in range(shape.documents):
            doc = f"document:{d}"
            yield t(f"folder:{rnd.randrange(shape.folders)}", "folder", doc)
            yield t(f"user:{rnd.randrange(shape.users)}", "owner", doc)
            editor = f"user:{rnd.randrange(shape.users)}"
            if d % 4 == 0:
                expires = FUTURE if d % 8 == 0 else PAST
                yield t(editor, "editor", doc,
                        {"name": "non_expired", "context": {"expires_at": expires}})
            else:
                yield t(editor, "editor", doc)
            if d % 3 == 0:
                yield t(f"team:{rnd.randrange(shape.teams)}#member", "viewer", doc)
            if d % 10 == 0:
                yield t(f"user:{rnd.randrange(shape.users)}", "blocked", doc)
        # Pad with direct viewers if the estimate fell short of the target.
        d = 0
        while True:
            yield t(f"user:{rnd.randrange(shape.users)}", "viewer", f"document:{d}")
            d = (d + 1) % shape.documents

    seen: set[tuple[str, str, str]] = set()

    def unique() -> Iterator[dict[str, Any]]:  # a tuple written twice is an error
        for key in stream():
            ident = (key["user"], key["relation"], key["object"])
            if ident not in seen:
                seen.add(ident)
                yield key

    yield from itertools.islice(unique(), tuples)


def queries(shape: Shape, seed: int, skew: float = 1.0) -> Iterator[tuple[str, str, str]]:
    """Endless (user, relation, document) questions, the same for the same seed.

    ``skew`` 1 draws users and documents uniformly (few questions repeat: the
    worst case for caches); above 1, low ids are drawn more often (popularity:
    ``id = n * r ** skew``; with 3, 10 % of the users ask 46 % of the questions).
    """
    rnd = random.Random(seed + 1)  # noqa: S311 (test data, not secrets)
    relations = ("viewer", "viewer", "viewer", "editor", "can_share")

    def pick(n: int) -> int:
        return min(n - 1, int(n * rnd.random() ** skew))

    while True:
        yield (f"user:{pick(shape.users)}", rnd.choice(relations),
               f"document:{pick(shape.documents)}")


# --------------------------------------------------------------------------- results


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil
    return sorted_values[int(rank) - 1]


@dataclass
class OpStats:
    op: str
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: int = 0
    first_error: str = ""

    def summary(self, seconds: float) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "op": self.op, "requests": len(lat) + self.errors, "errors": self.errors,
            "rps": round(len(lat) / seconds, 1) if seconds > 0 else 0.0,
            "p50_ms": round(percentile(lat, 50) * 1000, 2),
            "p95_ms": round(percentile(lat, 95) * 1000, 2),
            "p99_ms": round(percentile(lat, 99) * 1000, 2),
            **({"first_error": self.first_error} if self.first_error else {}),
        }


@dataclass
class Result:
    url: str
    store_id: str
    tuples: int
    setup_seconds: float
    seconds: float
    stopped_by: str  # "count" or "time"
    ops: dict[str, OpStats]
    concurrency: int

    def table(self) -> list[dict[str, Any]]:
        rows = [self.ops[op].summary(self.seconds) for op in self.ops]
        everything = OpStats("all", [x for s in self.ops.values() for x in s.latencies],
                             sum(s.errors for s in self.ops.values()))
        return [*rows, everything.summary(self.seconds)]

    def as_json(self) -> dict[str, Any]:
        return {"url": self.url, "store_id": self.store_id, "tuples": self.tuples,
                "setup_seconds": round(self.setup_seconds, 2), "seconds": round(self.seconds, 3),
                "stopped_by": self.stopped_by, "concurrency": self.concurrency,
                "results": self.table()}

    def text(self) -> str:
        lines = [
            f"bench against {self.url}: {self.tuples} tuples (setup {self.setup_seconds:.1f} s), "
            f"{self.seconds:.1f} s of load at concurrency {self.concurrency}, stopped by the "
            f"{self.stopped_by} limit",
            f"  {'op':<13}{'requests':>9}{'errors':>8}{'rps':>10}{'p50 ms':>9}{'p95 ms':>9}"
            f"{'p99 ms':>9}",
        ]
        for r in self.table():
            lines.append(f"  {r['op']:<13}{r['requests']:>9}{r['errors']:>8}{r['rps']:>10}"
                         f"{r['p50_ms']:>9}{r['p95_ms']:>9}{r['p99_ms']:>9}")
        for s in self.ops.values():
            if s.first_error:
                lines.append(f"  first {s.op} error: {s.first_error}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Objective:
    op: str
    metric: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Objective:
        head, _, value = text.partition("=")
        op, _, metric = head.strip().rpartition(".")
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if op not in (*OPS, "all") or metric not in METRICS or number < 0:
            raise BenchError(
                f"objective {text!r} is not OP.METRIC=VALUE: OP one of {', '.join((*OPS, 'all'))}; "
                f"METRIC one of {', '.join(METRICS)}; VALUE a number >= 0 "
                "(e.g. check.p95_ms=25 or all.rps=500)"
            )
        return cls(op, metric, number)

    def check(self, rows: dict[str, dict[str, Any]]) -> str | None:
        """None when met, else one sentence saying what was measured and what was wanted."""
        row = rows.get(self.op)
        if row is None:
            return f"{self.op}.{self.metric}: no {self.op} requests were run (see --ops)"
        got = row[self.metric]
        if self.metric == "rps":
            ok = got >= self.value
            want = f">= {self.value:g}"
        else:
            ok = got <= self.value
            want = f"<= {self.value:g}"
        return None if ok else f"{self.op}.{self.metric} = {got:g}, objective {want}"


def gate(result: Result, objectives: list[Objective], max_errors: int = 0) -> list[str]:
    """Every missed objective, as sentences (empty: all met)."""
    rows = {r["op"]: r for r in result.table()}
    missed = [m for o in objectives if (m := o.check(rows))]
    errors = rows["all"]["errors"]
    if errors > max_errors:
        missed.append(f"{errors} requests failed, at most {max_errors} allowed (--max-errors)")
    return missed


# --------------------------------------------------------------------------- transport


def check_transport(url: str, token: str | None, allow_plain_http: bool = False) -> str:
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BenchError(f"--url {url!r} is not an http(s) URL such as https://fga.example.com")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if token and parts.scheme == "http" and not (loopback or allow_plain_http):
        raise BenchError(
            f"refusing to send the preshared key over plain http to {host}: use https://, or "
            "--allow-plain-http only on a private network (a service binding)"
        )
    return url.rstrip("/")


# --------------------------------------------------------------------------- running


class _Api:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def call(self, what: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
        try:
            resp = await self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise BenchError(f"{what}: no answer ({type(exc).__name__}: {exc})") from None
        if resp.status_code == 401:
            raise BenchError(f"{what}: the server refused the preshared key (HTTP 401): put "
                             f"the server's key in {TOKEN_ENV}")
        if resp.status_code >= 300:
            raise BenchError(f"{what}: HTTP {resp.status_code}: {resp.text[:BODY_LIMIT]}")
        data = resp.json() if resp.content else {}
        return data if isinstance(data, dict) else {}


async def setup_store(api: _Api, tuples: int, seed: int, write_concurrency: int) -> tuple[str, str]:
    store = await api.call("create store", "POST", "/stores",
                           {"name": f"bench-{uuid.uuid4().hex[:10]}"})
    store_id = store["id"]
    try:
        model = await api.call("write model", "POST", f"/stores/{store_id}/authorization-models",
                               MODEL)
        model_id = model["authorization_model_id"]
        chunks: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        chunk: list[dict[str, Any]] = []
        for key in generate(tuples, seed):
            chunk.append(key)
            if len(chunk) == WRITE_CHUNK:
                chunks.put_nowait(chunk)
                chunk = []
        if chunk:
            chunks.put_nowait(chunk)

        async def writer() -> None:
            while not chunks.empty():
                batch = chunks.get_nowait()
                body = {"writes": {"tuple_keys": batch}, "authorization_model_id": model_id}
                await api.call("write tuples", "POST", f"/stores/{store_id}/write", body)

        await asyncio.gather(*(writer() for _ in range(max(1, write_concurrency))))
    except BaseException:
        await _delete(api, store_id)
        raise
    return store_id, model_id


async def _delete(api: _Api, store_id: str) -> None:
    try:
        await api.http.delete(f"/stores/{store_id}")
    except httpx.HTTPError:
        print(f"warning: store {store_id} was not deleted", file=sys.stderr)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _request(op: str, qs: Iterator[tuple[str, str, str]], model_id: str,
             context: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    pin = {"authorization_model_id": model_id}
    if op == "check":
        user, relation, obj = next(qs)
        return "check", {"tuple_key": {"user": user, "relation": relation, "object": obj},
                         "context": context, **pin}
    if op == "batch-check":
        checks = []
        for i in range(BATCH_SIZE):
            user, relation, obj = next(qs)
            checks.append({"tuple_key": {"user": user, "relation": relation, "object": obj},
                           "context": context, "correlation_id": str(i)})
        return "batch-check", {"checks": checks, **pin}
    user, _, _ = next(qs)
    return "list-objects", {"type": "document", "relation": "viewer", "user": user,
                            "context": context, **pin}


async def run_load(
    api: _Api, store_id: str, model_id: str, shape: Shape, *, ops: tuple[str, ...],
    requests: int, duration: float, concurrency: int, warmup: int = 0, seed: int = 1,
    skew: float = 1.0,
) -> tuple[dict[str, OpStats], float, str]:
    """Send requests until ``requests`` were sent or ``duration`` seconds passed.

    ``warmup`` requests first ask the same questions as the measured ones (not counted).
    """
    stats = {op: OpStats(op) for op in ops}
    qs = queries(shape, seed, skew)
    context = {"current_time": _now()}
    sent = 0
    warm = 0
    base = f"/stores/{store_id}"

    async def one(op: str, record: bool, questions: Iterator[tuple[str, str, str]]) -> None:
        path, body = _request(op, questions, model_id, context)
        started = time.perf_counter()
        try:
            resp = await api.http.post(f"{base}/{path}", json=body)
            ok, why = resp.status_code == 200, f"HTTP {resp.status_code}: {resp.text[:200]}"
            if resp.status_code == 401:
                raise BenchError("the server refused the preshared key (HTTP 401): put the "
                                 f"server's key in {TOKEN_ENV}")
        except httpx.HTTPError as exc:
            ok, why = False, f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        if not record:
            return
        s = stats[op]
        if ok:
            s.latencies.append(elapsed)
        else:
            s.errors += 1
            s.first_error = s.first_error or why

    warm_qs = queries(shape, seed, skew)  # the very questions measured next: warm caches

    async def warmer() -> None:
        nonlocal warm
        while warm < warmup:
            op = ops[warm % len(ops)]
            warm += 1
            await one(op, False, warm_qs)

    await asyncio.gather(*(warmer() for _ in range(concurrency)))
    started = time.monotonic()
    deadline = started + duration

    async def worker() -> None:
        nonlocal sent
        while sent < requests and time.monotonic() < deadline:
            op = ops[sent % len(ops)]
            sent += 1
            await one(op, True, qs)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.monotonic() - started
    return stats, seconds, "count" if sent >= requests else "time"


async def run_bench(
    url: str, token: str | None, *, tuples: int, requests: int, duration: float,
    concurrency: int = 8, ops: tuple[str, ...] = OPS, seed: int = 1, warmup: int = 0,
    store_id: str | None = None, model_id: str | None = None, keep_store: bool = False,
    write_concurrency: int = 8, allow_plain_http: bool = False, timeout: float = 30.0,
    skew: float = 1.0, setup_timeout: float = SETUP_TIMEOUT,
) -> Result:
    if skew < 1:
        raise BenchError(f"--skew {skew} is below 1: use 1 (uniform) or more (popular ids)")
    check_limits(tuples=tuples, requests=requests, duration=duration, concurrency=concurrency)
    for op in ops:
        if op not in OPS:
            raise BenchError(f"unknown operation {op!r}: use {', '.join(OPS)}")
    base = check_transport(url, token, allow_plain_http)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=concurrency + write_concurrency,
                          max_keepalive_connections=concurrency + write_concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout,
                                 limits=limits) as http:
        api = _Api(http)
        started = time.monotonic()
        created = store_id is None
        if store_id is None:
            try:  # the setup is bounded too: the limits below bound only the load
                made: tuple[str, str] = await asyncio.wait_for(
                    setup_store(api, tuples, seed, write_concurrency), setup_timeout)
            except TimeoutError:
                raise BenchError(
                    f"writing {tuples} tuples did not finish within {setup_timeout:g} s (the "
                    "store was deleted): lower --tuples or raise --setup-timeout"
                ) from None
            store_id, model_id = made
        elif model_id is None:
            models = await api.call("read models", "GET",
                                    f"/stores/{store_id}/authorization-models")
            found = models.get("authorization_models") or []
            if not found:
                raise BenchError(f"store {store_id} has no model: run once without --store-id")
            model_id = found[0]["id"]
        setup = time.monotonic() - started
        try:
            stats, seconds, stopped = await run_load(
                api, store_id, model_id or "", Shape.for_tuples(tuples), ops=ops,
                requests=requests, duration=duration, concurrency=concurrency, warmup=warmup,
                seed=seed, skew=skew)
        finally:
            if created and not keep_store:
                await _delete(api, store_id)
    return Result(base, store_id, tuples, setup, seconds, stopped, stats, concurrency)


# --------------------------------------------------------------------------- CLI


def check_limits(*, tuples: int, requests: int, duration: float, concurrency: int) -> None:
    """Both limits present and positive: a run is always bounded in count and in time."""
    if requests < 1 or not 0 < duration < float("inf") or concurrency < 1 or tuples < 1:
        raise BenchError(
            f"requests={requests}, duration={duration:g}, concurrency={concurrency} and "
            f"tuples={tuples} must all be positive and finite: they bound the run"
        )


def bench_command(url: str, *, script: str = "/bench/bench.py", tuples: int = 100_000,
                  requests: int = 20_000, duration: float = 60.0, concurrency: int = 16,
                  objectives: tuple[str, ...] = (), allow_plain_http: bool = False) -> list[str]:
    """argv to run this file in a container; the key comes from ``FGA_TOKEN``.

    Refuses (BenchError) unbounded limits and malformed objectives before anything runs."""
    check_limits(tuples=tuples, requests=requests, duration=duration, concurrency=concurrency)
    argv = ["python3", script, "--url", url, "--tuples", str(tuples), "--requests",
            str(requests), "--duration", f"{duration:g}", "--concurrency", str(concurrency)]
    for o in objectives:
        Objective.parse(o)  # refuse a malformed objective before anything runs
        argv += ["--objective", o]
    if allow_plain_http:
        argv.append("--allow-plain-http")
    return argv


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Bounded load test of an OpenFGA server, with a gate.")
    p.add_argument("--url", required=True)
    p.add_argument("--token-env", default=TOKEN_ENV, help="env var holding the preshared key")
    p.add_argument("--tuples", type=int, default=100_000, help="tuples to generate and write")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--requests", type=int, required=True, help="count limit (requests)")
    p.add_argument("--duration", type=float, required=True, help="time limit (seconds)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    p.add_argument("--warmup", type=int, default=0,
                   help="requests before measuring (the same questions: warm caches)")
    p.add_argument("--skew", type=float, default=1.0,
                   help="1: uniform questions; more: popular users/documents asked more often")
    p.add_argument("--ops", default=",".join(OPS), help="comma-separated: " + ", ".join(OPS))
    p.add_argument("--objective", action="append", default=[],
                   help="OP.METRIC=VALUE, e.g. check.p95_ms=25, all.rps=500 (repeatable)")
    p.add_argument("--max-errors", type=int, default=0)
    p.add_argument("--store-id", help="reuse a store this tool filled (skips the setup)")
    p.add_argument("--keep-store", action="store_true")
    p.add_argument("--write-concurrency", type=int, default=8)
    p.add_argument("--setup-timeout", type=float, default=SETUP_TIMEOUT,
                   help="seconds to write the tuples at most")
    p.add_argument("--allow-plain-http", action="store_true")
    p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    token = os.environ.get(args.token_env) or None
    try:
        objectives = [Objective.parse(o) for o in args.objective]
        result = asyncio.run(run_bench(
            args.url, token, tuples=args.tuples, requests=args.requests, duration=args.duration,
            concurrency=args.concurrency, ops=tuple(o.strip() for o in args.ops.split(",")),
            seed=args.seed, warmup=args.warmup, store_id=args.store_id, skew=args.skew,
            keep_store=args.keep_store, write_concurrency=args.write_concurrency,
            setup_timeout=args.setup_timeout,
            allow_plain_http=args.allow_plain_http))
    except BenchError as err:
        msg = str(err).replace(token, "***") if token else str(err)
        print(f"ERROR: {msg}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(result.as_json(), indent=2) if args.json else result.text())
    missed = gate(result, objectives, args.max_errors)
    for line in missed:
        print(f"MISSED: {line}", file=sys.stderr)
    if missed:
        print(f"FAILED: {len(missed)} objective(s) missed", file=sys.stderr)
        return EXIT_MISSED
    print(f"PASSED: {len(objectives)} objective(s) met")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
