"""An API smoke test for any OpenFGA endpoint, over plain HTTP with httpx.

Plain module, standard library and httpx only (no package imports), so it also
runs as a script in any Python container:

    FGA_TOKEN=... python smoke.py --url http://openfga:8080
    FGA_TOKEN=... python -m openfga_release.standalone.smoke --url https://fga.example.com

Steps, each named in the report and in any failure: health, create-store,
write-model (schema 1.1), write-tuples, check-allowed, check-denied,
check-computed (a rewrite), list-objects, delete-store. The store it creates
is deleted even when a step fails. The preshared key comes from an environment
variable, never from the command line, and never appears in a message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

DEFAULT_TIMEOUT = 10.0  # seconds per request
TOKEN_ENV = "FGA_TOKEN"  # noqa: S105 (a variable name, not a secret)
BODY_LIMIT = 500  # characters of a server answer kept in an error

# document#viewer is assignable (needs directly_related_user_types in 1.1) or
# implied by owner: one direct check and one through a rewrite.
MODEL: dict[str, Any] = {
    "schema_version": "1.1",
    "type_definitions": [
        {"type": "user"},
        {
            "type": "document",
            "relations": {
                "owner": {"this": {}},
                "viewer": {
                    "union": {"child": [{"this": {}}, {"computedUserset": {"relation": "owner"}}]}
                },
            },
            "metadata": {
                "relations": {
                    "owner": {"directly_related_user_types": [{"type": "user"}]},
                    "viewer": {"directly_related_user_types": [{"type": "user"}]},
                }
            },
        },
    ],
}
TUPLES = [
    {"user": "user:anne", "relation": "viewer", "object": "document:roadmap"},
    {"user": "user:carl", "relation": "owner", "object": "document:budget"},
]


def _key(user: str, relation: str, obj: str) -> dict[str, str]:
    return {"user": user, "relation": relation, "object": obj}


# (step, tuple key, expected "allowed")
CHECKS = [
    ("check-allowed", _key("user:anne", "viewer", "document:roadmap"), True),
    ("check-denied", _key("user:bob", "viewer", "document:roadmap"), False),
    ("check-computed", _key("user:carl", "viewer", "document:budget"), True),
]
LIST_QUERY = {"type": "document", "relation": "viewer", "user": "user:anne"}
LIST_EXPECTED = ["document:roadmap"]


class SmokeError(Exception):
    """A smoke step failed: which step, the HTTP status (None: no answer), what the server said."""

    def __init__(self, step: str, status: int | None, body: str, hint: str = "") -> None:
        self.step, self.status, self.body = step, status, body[:BODY_LIMIT]
        self.hint = hint or _hint(step, status, body)
        answer = f"HTTP {status}" if status is not None else "no HTTP answer"
        super().__init__(f"smoke step {step!r} failed: {answer}: {self.body}" + (
            f" ({self.hint})" if self.hint else ""
        ))


def _hint(step: str, status: int | None, body: str) -> str:
    # NOT_SERVING: schema below revision 4; a missing goose_db_version: never migrated.
    if step == "health" and ("NOT_SERVING" in body or "goose_db_version" in body):
        return (
            "the server runs but its database schema is missing or too old: run migrate "
            "(dagger call migrate ..., as openfga_migrator), then restart the server"
        )
    if status == 401:
        return "the server wants a preshared key: pass the right one with --token / FGA_TOKEN"
    if status == 403:
        return "the key is valid but not allowed to do this"
    return ""


@dataclass
class Step:
    name: str
    seconds: float
    detail: str = ""


@dataclass
class SmokeReport:
    url: str
    store_id: str = ""
    model_id: str = ""
    steps: list[Step] = field(default_factory=list)
    cleaned_up: bool = False

    def summary(self) -> str:
        lines = [f"OpenFGA smoke test passed against {self.url}"]
        lines += [f"  ok  {s.name:<15} {s.seconds * 1000:7.1f} ms  {s.detail}" for s in self.steps]
        return "\n".join(lines)


class _Client:
    """One step at a time: sends a request and turns any failure into a SmokeError."""

    def __init__(self, http: httpx.AsyncClient, report: SmokeReport) -> None:
        self.http, self.report = http, report

    async def call(
        self, step: str, method: str, path: str, body: Any = None, ok: int = 200
    ) -> dict[str, Any]:
        started = time.monotonic()
        try:
            resp = await self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            answer = f"{type(exc).__name__}: {exc}"
            raise SmokeError(step, None, answer, _net_hint(self.report.url)) from None
        if resp.status_code != ok:
            raise SmokeError(step, resp.status_code, resp.text.strip())
        try:
            data = resp.json() if resp.content else {}
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise SmokeError(step, resp.status_code, "answer is not a JSON object: " + resp.text)
        self.report.steps.append(Step(step, time.monotonic() - started))
        return data

    def expect(self, step: str, ok: bool, data: Any, wanted: str) -> None:
        if not ok:
            body = json.dumps(data)
            raise SmokeError(step, 200, body, f"expected {wanted}")
        self.report.steps[-1].detail = wanted


def _net_hint(url: str) -> str:
    return f"no answer from {url}: check the URL, the port (HTTP is 8080) and that the server runs"


async def run_smoke(
    url: str,
    token: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    keep_store: bool = False,
    health_wait: float = 0.0,
) -> SmokeReport:
    """Drive the API end to end against ``url``; raises :class:`SmokeError` on the first failure.

    ``health_wait``: seconds to keep asking /healthz until SERVING (a server
    that was just started or deployed), before the health step counts.
    """
    url = url.rstrip("/")
    report = SmokeReport(url=url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout) as http:
        client = _Client(http, report)
        await _await_serving(http, health_wait)
        try:
            await _steps(client, report)
        except Exception:
            if report.store_id and not keep_store:
                await _cleanup(client, report, failing=True)
            raise
        if report.store_id and not keep_store:
            await _cleanup(client, report, failing=False)
    return report


async def _await_serving(http: httpx.AsyncClient, seconds: float) -> None:
    """Best effort: the health step that follows reports whatever is still wrong."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            resp = await http.get("/healthz")
            if resp.status_code == 200 and '"SERVING"' in resp.text:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)


async def _steps(c: _Client, report: SmokeReport) -> None:
    health = await c.call("health", "GET", "/healthz")
    c.expect("health", health.get("status") == "SERVING", health, "status SERVING")
    name = f"smoke-{uuid.uuid4().hex[:10]}"
    store = await c.call("create-store", "POST", "/stores", {"name": name}, ok=201)
    report.store_id = store.get("id", "")
    c.expect("create-store", bool(report.store_id), store, "a store id")
    base = f"/stores/{report.store_id}"
    model = await c.call("write-model", "POST", f"{base}/authorization-models", MODEL, ok=201)
    report.model_id = model.get("authorization_model_id", "")
    c.expect("write-model", bool(report.model_id), model, "an authorization model id")
    pinned = {"authorization_model_id": report.model_id}
    writes = {"writes": {"tuple_keys": TUPLES}, **pinned}
    await c.call("write-tuples", "POST", f"{base}/write", writes)
    for step, key, allowed in CHECKS:
        got = await c.call(step, "POST", f"{base}/check", {"tuple_key": key, **pinned})
        c.expect(step, got.get("allowed") is allowed, got, f"allowed={str(allowed).lower()}")
    got = await c.call("list-objects", "POST", f"{base}/list-objects", {**LIST_QUERY, **pinned})
    found = sorted(got.get("objects") or [])
    c.expect("list-objects", found == LIST_EXPECTED, got, f"objects {LIST_EXPECTED}")


async def _cleanup(c: _Client, report: SmokeReport, failing: bool) -> None:
    try:
        await c.call("delete-store", "DELETE", f"/stores/{report.store_id}", ok=204)
        report.cleaned_up = True
    except SmokeError:
        if not failing:  # a failing step's error matters more than the cleanup's
            raise


def smoke_command(
    url: str,
    *,
    script: str = "/smoke/smoke.py",
    wait: float = 30.0,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[str]:
    """argv to run this file as a script in a container; the key comes from FGA_TOKEN."""
    return [
        "python3", script, "--url", url, "--wait", f"{wait:g}", "--timeout", f"{timeout:g}",
    ]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Smoke-test an OpenFGA server's HTTP API.")
    p.add_argument("--url", required=True, help="HTTP API base URL, e.g. http://localhost:8080")
    p.add_argument(
        "--token-env", default=TOKEN_ENV,
        help=f"env var holding the preshared key (default {TOKEN_ENV}; unset: no authn)",
    )
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per request")
    p.add_argument(
        "--wait", type=float, default=0.0, help="seconds to wait for /healthz to say SERVING"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    token = os.environ.get(args.token_env) or None
    try:
        report = asyncio.run(
            run_smoke(args.url, token, timeout=args.timeout, health_wait=args.wait)
        )
    except SmokeError as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({
            "url": report.url, "store_id": report.store_id, "model_id": report.model_id,
            "cleaned_up": report.cleaned_up, "steps": [s.__dict__ for s in report.steps],
        }))
    else:
        print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
