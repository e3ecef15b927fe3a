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
import ipaddress
import json
import math
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

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


MAX_WAIT = 600.0  # seconds; a server that is not SERVING by then will not be
MAX_TIMEOUT = 300.0  # seconds per request
# Names that only resolve on a private network (a Dagger service alias has no dot).
PRIVATE_SUFFIXES = (".internal", ".local", ".svc", ".cluster.local", ".localdomain")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_PATH = re.compile(r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]*)*")


class SmokeInputError(ValueError):
    """An argument the smoke test refuses before it sends anything: the problem and the fix.

    (The script imports nothing from the package; the module's InputError has the
    same meaning.) The message never repeats a URL that holds credentials.
    """


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_private(host: str) -> bool:
    """Loopback, a private/link-local/CGNAT address, or a name only a private network resolves."""
    name = host.lower().rstrip(".")
    ip = _ip(name)
    if ip is not None:
        return ip.is_loopback or ip.is_private or ip in ipaddress.ip_network("100.64.0.0/10")
    return name in ("localhost", "localhost.localdomain") or "." not in name or (
        name.endswith(PRIVATE_SUFFIXES)
    )


def check_url(url: object, *, token: bool = False) -> str:
    """The OpenFGA HTTP API base URL, or :class:`SmokeInputError` naming the fix.

    http or https, a host, an optional port and path; no credentials, query or
    fragment (they would land in argv, logs and the report). A preshared key
    (``token``) goes over plain http only to a loopback or private host.
    """
    example = "e.g. https://fga.example.com or http://openfga:8080"
    if not isinstance(url, str) or not url.strip():
        raise SmokeInputError(f"--url is empty: give the OpenFGA HTTP API URL, {example}")
    if url.startswith("-"):
        raise SmokeInputError(
            f"--url starts with '-', like an option (--help?): give the API URL itself, {example}"
        )
    if url != url.strip() or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise SmokeInputError(
            f"--url holds spaces or control characters (a newline?): give one clean URL, {example}"
        )
    if len(url) > 2048:
        raise SmokeInputError(f"--url is longer than 2048 characters: give the base URL, {example}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise SmokeInputError(
            f"--url does not parse as a URL (its port or [IPv6] host?): give one, {example}"
        ) from None
    if "@" in parts.netloc:
        raise SmokeInputError(
            "--url holds credentials (user:password@): they would land in argv, logs and the "
            "report; remove them and pass the preshared key with --token env://FGA_TOKEN"
        )
    if parts.scheme not in ("http", "https") or "//" not in url:
        raise SmokeInputError(
            f"--url needs the scheme http:// or https:// and a host: give the full URL, {example}"
        )
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise SmokeInputError(
            "--url has a ?query or #fragment (a key there would be logged): give only "
            f"scheme://host[:port][/path], {example}; the key goes in --token env://FGA_TOKEN"
        )
    host = parts.hostname or ""
    bracketed = parts.netloc.startswith("[")
    if not host or not (
        _HOST_NAME.fullmatch(host) if not bracketed else _ip(host) is not None
    ) or (not bracketed and ":" in host):
        raise SmokeInputError(f"--url names no valid host name or IP address: {example}")
    if port == 0 or parts.netloc.endswith(":"):
        raise SmokeInputError(f"--url has an empty or zero port: give 1-65535, {example}")
    if not _PATH.fullmatch(parts.path):
        raise SmokeInputError(
            f"--url has a path with characters that need percent-encoding: {example}"
        )
    if token and parts.scheme == "http" and not is_private(host):
        raise SmokeInputError(
            f"refusing to send the preshared key over plain http to the public host {host}: "
            "use https://, or a loopback/private address or a service alias"
        )
    return url


def check_seconds(name: str, value: object, *, low: float, high: float, zero: bool) -> float:
    """A finite number of seconds within (low, high] (or [0, high] with ``zero``)."""
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    number = math.nan if bad else float(value)  # type: ignore[arg-type]
    ok = math.isfinite(number) and (low <= number if zero else low < number) and number <= high
    if not ok:
        shown = "not a number" if bad else f"{number:g}"
        lower = f"from {low:g}" if zero else f"above {low:g}"
        raise SmokeInputError(
            f"--{name} {shown} is out of range: give seconds {lower} up to {high:g}"
        )
    return number


def check_wait(wait: object) -> float:
    return check_seconds("wait", wait, low=0.0, high=MAX_WAIT, zero=True)


def check_timeout(timeout: object) -> float:
    return check_seconds("timeout", timeout, low=0.0, high=MAX_TIMEOUT, zero=False)


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
    url = check_url(url, token=bool(token)).rstrip("/")
    health_wait, timeout = check_wait(health_wait), check_timeout(timeout)
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
    token: bool = False,
) -> list[str]:
    """argv to run this file as a script in a container; the key comes from FGA_TOKEN.

    Every argument is checked here, before any container runs (``token``: a
    preshared key will be sent), and again by the script itself.
    """
    check_url(url, token=token)
    wait, timeout = check_wait(wait), check_timeout(timeout)
    return ["python3", script, f"--url={url}", f"--wait={wait:g}", f"--timeout={timeout:g}"]


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
        check_url(args.url, token=token is not None)
        check_wait(args.wait)
        check_timeout(args.timeout)
    except SmokeInputError as err:
        print(f"REFUSED: {err}", file=sys.stderr)
        return 2
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
