"""The bad-input catalogue (issue 8): every function and plain module, grouped by class.

Each case is refused with an ``InputError`` (or a lone script's own error class)
before any engine contact: the fake engine answers no question, no container is
awaited, no service started, the engine's platform is never asked. The message
names the problem and the fix (a fix keyword per case) and holds no secret the
case was given, in any printed form (plain, percent-encoded, JSON/Go-escaped).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import anyio
import dagger
import pytest
from dagger import dag
from openfga_release import datastore, openfga
from openfga_release.kubernetes import Kubernetes
from openfga_release.recipes import backup, dsn, gobuild, kubernetes, publish, releases, sign
from openfga_release.recipes import migrate as mig
from openfga_release.recipes import postgres as pg
from openfga_release.recipes.errors import InputError
from openfga_release.registry import Registry
from openfga_release.standalone import smoke, verify

from tests.support.engine import FakeEngine
from tests.support.module import call

PW = "Zq8#mV2/k@pL9:x%w!T"  # a datastore password with every URI-special character
PW_URL = quote(PW, safe="")
KEY = "pk-7f3a9c1e5b2d4a6f8e0c"  # a preshared key


@dataclass(frozen=True)
class Case:
    group: str
    name: str
    run: Callable[[], Any]
    fix: str  # a word of the fix the message must name
    secrets: tuple[str, ...] = ()
    error: type[Exception] = InputError

    @property
    def id(self) -> str:
        return f"{self.group}: {self.name}"


CASES: list[Case] = []


def case(group: str, name: str, fix: str, *secrets: str, error: type[Exception] = InputError):
    def add(run: Callable[[], Any]) -> Callable[[], Any]:
        CASES.append(Case(group, name, run, fix, secrets, error))
        return run

    return add


def cases(group: str, fn: Callable[..., Any], table: list[tuple[str, Any, str]], **kw: Any) -> None:
    """``fn(value)`` for each (name, value, fix) of ``table``."""
    for name, value, fix in table:
        CASES.append(Case(group, name, lambda v=value: fn(v), fix, **kw))


def secret(value: str) -> dagger.Secret:
    return dag.set_secret("catalogue-secret", value)


# -- 1. build flags: allow-lists, normalised the way Go's flag package reads them

ALLOWED_GO = "Allowed extra go build flags"
BAD_GO_FLAGS = [
    ("double-dash ldflags", "--ldflags=-s -w", "pass linker flags with --ldflags"),
    ("toolexec", "-toolexec=/bin/sh", ALLOWED_GO),
    ("--toolexec", "--toolexec=/tmp/x", ALLOWED_GO),
    ("overlay", "-overlay=/tmp/o.json", ALLOWED_GO),
    ("modfile", "-modfile=/tmp/go.mod", ALLOWED_GO),
    ("mod=mod", "-mod=mod", "-mod=readonly"),
    ("trimpath=false", "-trimpath=false", ALLOWED_GO),
    ("cover", "-cover", ALLOWED_GO),
    ("gcflags", "-gcflags=all=-N", ALLOWED_GO),
    ("n", "-n", ALLOWED_GO),
    ("tags via go flags", "-tags=osusergo", "pass build tags with --tags"),
    ("buildmode pie", "-buildmode=pie", "What works"),
    ("race needs cgo", "-race", "cgo"),
    ("msan", "-msan", "cgo"),
    ("unbalanced quote in -ldflags", "-ldflags='-s", "pass linker flags with --ldflags"),
    ("o", "-o=/tmp/x", ALLOWED_GO),
]
for _name, _flag, _fix in BAD_GO_FLAGS:
    CASES.append(
        Case("build flags", f"go flag {_name}", lambda f=_flag: gobuild.check_go_flags([f]), _fix)
    )
    CASES.append(
        Case(
            "build flags",
            f"build-openfga --go-flags {_name}",
            lambda f=_flag: call("build_openfga", go_flags=(f,)),
            _fix,
        )
    )

ALLOWED_LD = "Allowed extra linker flags"
BAD_LDFLAGS = [
    ("-X build.Version", "-X github.com/openfga/openfga/internal/build.Version=v9.9.9", "stamp"),
    ("--X build.Version", "--X github.com/openfga/openfga/internal/build.Version=v9.9.9", "stamp"),
    ("-X build.Commit", "-X=github.com/openfga/openfga/internal/build.Commit=abc", "stamp"),
    ("linker buildmode pie", "-buildmode=pie", "What works"),
    ("linkmode external", "-linkmode=external", "What works"),
    ("extld", "-extld=/bin/sh", ALLOWED_LD),
    ("H freebsd", "-H=freebsd", ALLOWED_LD),
    ("r rpath", "-r=/tmp", ALLOWED_LD),
    ("unbalanced quote", "-X 'main.x=a", "quote"),
]
for _name, _flag, _fix in BAD_LDFLAGS:
    CASES.append(
        Case("build flags", f"ldflag {_name}", lambda f=_flag: gobuild.check_link_flags([f]), _fix)
    )
    CASES.append(
        Case(
            "build flags",
            f"build-openfga --ldflags {_name}",
            lambda f=_flag: call("build_openfga", ldflags=(f,)),
            _fix,
        )
    )

BAD_TAGS = [
    ("empty", "", "letters, digits"),
    ("option", "-x", "letters, digits"),
    ("dash", "my-tag", "letters, digits"),
    ("path", "../x", "letters, digits"),
    ("cgo", "cgo", "What works"),
    ("netcgo", "netcgo", "What works"),
    ("go version", "go1.20", "What works"),
    ("goexperiment", "goexperiment.arenas", "What works"),
]
for _name, _tag, _fix in BAD_TAGS:
    CASES.append(Case("build flags", f"tag {_name}", lambda t=_tag: gobuild.check_tags([t]), _fix))
    CASES.append(
        Case(
            "build flags",
            f"build-openfga --tags {_name}",
            lambda t=_tag: call("build_openfga", tags=(t,)),
            _fix,
        )
    )

# -- 2. versions and provenance

BAD_VERSIONS = [
    ("trailing newline", "v1.22.1\n", "vMAJOR.MINOR.PATCH"),
    ("no v", "1.22.1", "vMAJOR.MINOR.PATCH"),
    ("two parts", "v1.22", "vMAJOR.MINOR.PATCH"),
    ("latest", "latest", "vMAJOR.MINOR.PATCH"),
    ("option", "--help", "vMAJOR.MINOR.PATCH"),
    ("spaces", " v1.22.1", "vMAJOR.MINOR.PATCH"),
    ("unknown release", "v9.9.9", "releases.py"),
    ("too long", "v1.22.1-" + "a" * 200, "characters"),
]
cases("versions", releases.release, BAD_VERSIONS)
for _name, _v, _fix in BAD_VERSIONS:
    CASES.append(
        Case(
            "versions",
            f"build-openfga --version {_name}",
            lambda v=_v: call("build_openfga", version=v),
            _fix,
        )
    )
for _name, _v in [
    ("the release's own tag", "v1.22.1"),
    ("no suffix", "v2.0.0"),
    ("newline", "v1.22.1-acme.1\n"),
]:
    CASES.append(
        Case(
            "versions",
            f"--source with --version {_name}",
            lambda v=_v: call("build_openfga", version=v, source=dag.directory()),
            "v1.22.1",
        )
    )
CASES.append(
    Case(
        "versions",
        "--commit on a pinned release",
        lambda: call("build_openfga", commit="0" * 40),
        "--source",
    )
)
CASES.append(
    Case(
        "versions",
        "--date on a pinned release",
        lambda: call("build_openfga", date="2026-01-01T00:00:00Z"),
        "--source",
    )
)
for _name, _c in [
    ("short", "abc"),
    ("not hex", "z" * 40),
    ("newline", "0" * 40 + "\n"),
    ("option", "--help"),
]:
    CASES.append(
        Case(
            "versions",
            f"--commit {_name}",
            lambda c=_c: call(
                "build_openfga", version="v1.22.1-acme.1", source=dag.directory(), commit=c
            ),
            "commit",
        )
    )

# -- 3. dates: strict RFC 3339 with an offset, in the 32-bit range

BAD_DATES = [
    ("space separator", "2026-10-28 12:53:36Z"),
    ("naive", "2026-10-28T12:53:36"),
    ("ISO week date", "2026-W44-3T12:53:36Z"),
    ("date only", "2026-10-28"),
    ("before 1970", "1969-12-31T23:59:59Z"),
    ("after 2038", "2039-01-01T00:00:00Z"),
    ("not a day", "2026-02-30T00:00:00Z"),
    ("trailing newline", "2026-10-28T12:53:36Z\n"),
    ("lower-case t", "2026-10-28t12:53:36z"),
    ("empty", ""),
]
cases("dates", releases.to_epoch, [(n, d, "RFC 3339") for n, d in BAD_DATES])
for _name, _d in BAD_DATES[:6]:
    CASES.append(
        Case(
            "dates",
            f"--source build --date {_name}",
            lambda d=_d: call(
                "build_openfga", version="v1.22.1-acme.1", source=dag.directory(), date=d
            ),
            "RFC 3339",
        )
    )

# -- 4. architectures

BAD_ARCHES = [
    ("386", "386"),
    ("x86_64", "x86_64"),
    ("upper case", "AMD64"),
    ("newline", "amd64\n"),
    ("empty", ""),
    ("platform", "linux/amd64"),
]
cases("arch", gobuild.check_arch, [(n, a, "one of amd64, arm64") for n, a in BAD_ARCHES])
for _name, _a in BAD_ARCHES[:4]:
    CASES.append(
        Case(
            "arch",
            f"openfga-image --arch {_name}",
            lambda a=_a: call("openfga_image", arch=a),
            "one of amd64, arm64",
        )
    )
    CASES.append(
        Case(
            "arch",
            f"build-openfga --arch {_name}",
            lambda a=_a: call("build_openfga", arch=a),
            "one of amd64, arm64",
        )
    )
for _fn in ("migrate", "test_e2e"):
    CASES.append(
        Case(
            "arch",
            f"{_fn} --arch 386",
            lambda f=_fn: call(
                f,
                arch="386",
                **({"host": "db.internal", "password": secret(PW)} if f == "migrate" else {}),
            ),
            "one of amd64, arm64",
            (PW,),
        )
    )

# -- 5. images: pinned to a full version or a digest, no trailing text

BAD_GO_IMAGES = [
    ("untagged", "golang"),
    ("latest", "golang:latest"),
    ("minor only", "golang:1.26"),
    ("newline", "golang:1.26.8-bookworm\n"),
    ("short digest", "golang@sha256:abc"),
    ("space", "golang: 1.26.8"),
]
_IMAGE_FIX = {
    "newline": "name:tag or name@sha256",
    "short digest": "name:tag or name@sha256",
    "space": "name:tag or name@sha256",
}
cases(
    "images",
    releases.check_go_image,
    [(f"go image {n}", i, _IMAGE_FIX.get(n, "pin")) for n, i in BAD_GO_IMAGES],
)
for _name, _i in BAD_GO_IMAGES[:4]:
    CASES.append(
        Case(
            "images",
            f"--go-image {_name}",
            lambda i=_i: call("build_openfga", go_image=i),
            _IMAGE_FIX.get(_name, "pin"),
        )
    )
BAD_PG_IMAGES = [
    ("untagged", "postgres"),
    ("major only", "postgres:17"),
    ("alpine", "postgres:17.9-alpine"),
    ("9.6", "postgres:9.6.24"),
    ("newline", "postgres:17.9-bookworm\n"),
]
cases(
    "images",
    pg.check_image_pinned,
    [(f"postgres image {n}", i, "postgres") for n, i in BAD_PG_IMAGES],
)
for _name, _i in BAD_PG_IMAGES:
    CASES.append(
        Case(
            "images", f"postgres --base {_name}", lambda i=_i: call("postgres", base=i), "postgres"
        )
    )
cases(
    "images",
    backup.check_image,
    [
        ("backup untagged", "openfga-backup", "pinned"),
        ("backup latest", "openfga-backup:latest", "pinned"),
    ],
)
cases(
    "images",
    lambda r: kubernetes.check_digest_ref("OpenFGA", r),
    [("kubernetes by tag", "ghcr.io/acme/openfga:v1.22.1", "digest")],
)
cases(
    "images",
    sign.check_digest_ref,
    [
        ("sign a tag", "ghcr.io/acme/openfga:v1.22.1", "digest"),
        ("sign latest", "ghcr.io/acme/openfga", "digest"),
    ],
)

# -- 6. PostgreSQL sizes

BAD_MEMORY = [
    ("too small", "128MiB", "at least"),
    ("zero", "0", "at least"),
    ("negative", "-1GiB", "memory"),
    ("unknown unit", "1TB", "memory"),
    ("words", "lots", "memory"),
    ("empty", "", "memory"),
    ("millibytes", "1m", "at least"),
]
cases("postgres sizes", lambda m: pg.render_memory_conf(m), BAD_MEMORY)
for _name, _m, _fix in BAD_MEMORY[:5]:
    CASES.append(
        Case(
            "postgres sizes",
            f"postgres --memory {_name}",
            lambda m=_m: call("postgres", memory=m),
            _fix,
        )
    )
for _name, _n in [("zero", 0), ("negative", -5), ("huge", 1_000_000)]:
    CASES.append(
        Case(
            "postgres sizes",
            f"postgres --max-connections {_name}",
            lambda n=_n: call("postgres", max_connections=n),
            "max_connections",
        )
    )
CASES.append(
    Case(
        "postgres sizes",
        "postgres without a config",
        lambda: call("postgres", postgres_config=None),
        "--postgres-config",
    )
)
cases(
    "postgres sizes",
    lambda q: kubernetes.check_quantity("memory", q),
    [("k8s quantity words", "lots", "512Mi"), ("k8s quantity space", "1 Gi", "512Mi")],
)

# -- 7. PostgreSQL names (database and roles)

BAD_NAMES = [
    ("empty", ""),
    ("upper case", "OpenFGA"),
    ("dash", "openfga-app"),
    ("space", "openfga app"),
    ("quote", 'x"; DROP'),
    ("reserved pg_", "pg_openfga"),
    ("newline", "openfga\n"),
    ("too long", "a" * 64),
    ("digit first", "1openfga"),
]
cases(
    "postgres names",
    lambda n: pg.check_name("database", n),
    [(n, v, "letter") for n, v in BAD_NAMES[:5] + BAD_NAMES[6:]],
)
CASES.append(
    Case(
        "postgres names",
        "reserved pg_ prefix",
        lambda: pg.check_name("database", "pg_openfga"),
        "another name",
    )
)
for _knob, (_name, _v) in zip(
    ["database", "owner_role", "migrator_role", "app_role", "readonly_role", "database"],
    [BAD_NAMES[1], BAD_NAMES[2], BAD_NAMES[3], BAD_NAMES[4], BAD_NAMES[6], BAD_NAMES[7]],
    strict=True,
):
    CASES.append(
        Case(
            "postgres names",
            f"postgres --{_knob} {_name}",
            lambda k=_knob, v=_v: call("postgres", **{k: v}),
            "letter",
        )
    )
CASES.append(
    Case(
        "postgres names",
        "two roles with one name",
        lambda: call("postgres", app_role="openfga_migrator"),
        "distinct",
    )
)
cases(
    "postgres names",
    kubernetes.check_namespace,
    [
        ("k8s namespace upper", "OpenFGA", "lowercase"),
        ("k8s namespace underscore", "open_fga", "lowercase"),
        ("k8s namespace empty", "", "lowercase"),
    ],
)
cases("postgres names", kubernetes.check_flavor, [("k8s flavor", "helm", "statefulset")])

# -- 8. PostgreSQL passwords (rules of the init script; messages name the variable)

_GOOD = {"migrator": "Mig-8c1d9f2e7a6b", "app": "App-3e5f7a9c1b2d", "readonly": "Ro-4a6c8e0f2b3d5"}
BAD_PASSWORDS = [
    ("empty", "", "needs a password"),
    ("short", "aB3$xY", "at least"),
    ("newline", "Abcdef123456\n", "control characters"),
    ("tab", "Abc\tdef123456", "control characters"),
    ("few distinct", "abababababababab", "different characters"),
    ("holds the role name", "xX9-openfga_app-Yz", "contains the name"),
    ("holds the database name", "Zz7!openfga#Qq", "contains the name"),
]
for _name, _pw, _fix in BAD_PASSWORDS:
    CASES.append(
        Case(
            "postgres passwords",
            f"app password {_name}",
            lambda p=_pw: pg.check_passwords({**_GOOD, "app": p}),
            _fix,
            (_pw,) if len(_pw) > 3 else (),
        )
    )
CASES.append(
    Case(
        "postgres passwords",
        "two roles share a password",
        lambda: pg.check_passwords({**_GOOD, "app": _GOOD["migrator"]}),
        "its own password",
        (_GOOD["migrator"],),
    )
)
CASES.append(
    Case(
        "postgres passwords",
        "datastore password too long",
        lambda: dsn.check_password("x" * 2000 + "Q7", "the datastore password"),
        "bytes",
        ("x" * 2000 + "Q7",),
    )
)

# -- 9. datastore URIs, read as pgx reads them
#
# Function level: the migrate wiring (datastore.run_migrate, what main.py's migrate
# calls), whose image factory asks the engine's platform: it must never be reached.

_M = "openfga_migrator"


async def _image() -> dagger.Container:
    await openfga.engine_arch()
    return dag.container()


def migrate_fn(**kw: Any) -> Any:
    kw.setdefault("names", pg.Names())
    return datastore.run_migrate(_image, **kw)


BAD_URIS = [
    ("no //", f"postgres:{_M}:{PW_URL}@db.internal/openfga", "postgres://"),
    ("unencoded password", f"postgres://{_M}:{PW}@db.internal/openfga", "%40"),
    (
        "public host, no sslmode",
        f"postgres://{_M}:{PW_URL}@db.example.com/openfga",
        "sslmode=require",
    ),
    (
        "public host, sslmode=disable",
        f"postgres://{_M}:{PW_URL}@db.example.com/openfga?sslmode=disable",
        "sslmode=require",
    ),
    (
        "public host, sslmode=prefer",
        f"postgres://{_M}:{PW_URL}@db.example.com/openfga?sslmode=prefer",
        "sslmode=require",
    ),
    (
        "empty sslmode",
        f"postgres://{_M}:{PW_URL}@db.example.com/openfga?sslmode=",
        "sslmode=require",
    ),
    (
        "host in the query",
        f"postgres://{_M}:{PW_URL}@db.internal/openfga?host=evil.example.com",
        "only in their place",
    ),
    (
        "user in the query",
        f"postgres://{_M}:{PW_URL}@db.internal/openfga?user=openfga_app",
        "only in their place",
    ),
    (
        "host list with a public host",
        f"postgres://{_M}:{PW_URL}@evil.example.com,db.internal/openfga",
        "sslmode=require",
    ),
    (
        "password in the query",
        f"postgres://{_M}@db.internal/openfga?password={PW_URL}",
        "only in their place",
    ),
    (
        "pgx-only parameter",
        f"postgres://{_M}:{PW_URL}@db.internal/openfga?pool_max_conns=5",
        "use only",
    ),
    (
        "app role",
        f"postgres://openfga_app:{PW_URL}@db.internal/openfga",
        "run migrate as openfga_migrator",
    ),
    ("mysql scheme", f"mysql://{_M}:{PW_URL}@db.internal/openfga", "postgres://"),
    ("keyword form", f"host=db.example.com user={_M} password={PW_URL}", "postgres://"),
    ("trailing newline", f"postgres://{_M}:{PW_URL}@db.internal/openfga\n", "encoded"),
]


def _uri_check(uri: str) -> None:
    d = dsn.check_uri_as_given(uri)
    mig.check_migrator_user(d.user)


for _name, _uri, _fix in BAD_URIS:
    CASES.append(Case("datastore URIs", _name, lambda u=_uri: _uri_check(u), _fix, (PW, _uri)))
    CASES.append(
        Case(
            "datastore URIs",
            f"migrate --datastore-uri {_name}",
            lambda u=_uri: migrate_fn(datastore_uri=secret(u)),
            _fix,
            (PW, _uri),
        )
    )
BAD_HOSTS = [
    ("host list", "evil.example.com,db.internal", {}, "give one host"),
    ("host with port", "db.internal:5432", {}, "give one host"),
    ("host with space", "db internal", {}, "give one host"),
    ("public host, sslmode disable", "db.example.com", {"sslmode": "disable"}, "sslmode=require"),
    ("sslmode typo", "db.internal", {"sslmode": "requir"}, "sslmode"),
    ("port zero", "db.internal", {"port": 0}, "between 1 and 65535"),
    ("port too big", "db.internal", {"port": 70000}, "between 1 and 65535"),
]
for _name, _host, _kw, _fix in BAD_HOSTS:
    CASES.append(
        Case(
            "datastore URIs",
            f"migrate --host {_name}",
            lambda h=_host, k=_kw: migrate_fn(host=h, password=secret(PW), **k),
            _fix,
            (PW,),
        )
    )

# -- 10. migrate arguments

_URI = f"postgres://{_M}:{PW_URL}@db.internal/openfga"
for _name, _kw, _fix in [
    ("neither URI nor host", {}, "either"),
    (
        "both URI and host",
        {"datastore_uri": "URI", "host": "db.internal", "password": "PW"},
        "not both",
    ),
    ("host without password", {"host": "db.internal"}, "--password"),
    ("revision zero", {"target": 0, "host": "db.internal", "password": "PW"}, "positive number"),
    (
        "negative revision",
        {"target": -3, "host": "db.internal", "password": "PW"},
        "positive number",
    ),
    ("timeout zero", {"timeout": 0, "datastore_uri": "URI"}, "--timeout"),
    ("timeout below connecting", {"timeout": 10, "datastore_uri": "URI"}, "--timeout"),
    ("timeout a week", {"timeout": 7 * 86400, "datastore_uri": "URI"}, "--timeout"),
    (
        "as the app role",
        {"user": "openfga_app", "host": "db.internal", "password": "PW"},
        "openfga_migrator",
    ),
    (
        "as the readonly role",
        {"user": "openfga_readonly", "host": "db.internal", "password": "PW"},
        "openfga_migrator",
    ),
    (
        "as the NOLOGIN owner",
        {"user": "openfga_owner", "host": "db.internal", "password": "PW"},
        "openfga_migrator",
    ),
    (
        "as a custom app role",
        {"user": "fga_rw", "names": "CUSTOM", "host": "db.internal", "password": "PW"},
        "fga_mig",
    ),
]:

    def _run(kw: dict[str, Any] = _kw) -> Any:
        given = {
            "URI": secret(_URI),
            "PW": secret(PW),
            "CUSTOM": pg.Names(app="fga_rw", migrator="fga_mig"),
        }
        return migrate_fn(
            **{k: given.get(v, v) if isinstance(v, str) else v for k, v in kw.items()}
        )

    CASES.append(Case("migrate", f"migrate {_name}", _run, _fix, (PW, _URI)))
for _name, _kw in [
    ("URI with --password", {"password": "PW"}),
    ("URI with --user", {"user": "openfga_app"}),
    ("URI with --port", {"port": 6432}),
    ("URI with --sslmode", {"sslmode": "disable"}),
]:
    CASES.append(
        Case(
            "migrate",
            f"migrate {_name} (silently ignored)",
            lambda kw=_kw: migrate_fn(
                datastore_uri=secret(_URI),
                **{k: secret(PW) if v == "PW" else v for k, v in kw.items()},
            ),
            "would be ignored",
            (PW, _URI),
        )
    )
cases(
    "migrate",
    mig.check_target,
    [
        ("release tag as revision", "v1.22.1", "schema revision"),
        ("words", "latest", "positive number"),
        ("float", "6.5", "number such as 6"),
    ],
)
cases(
    "migrate",
    mig.check_timeout,
    [("nan timeout", float("nan"), "--timeout"), ("inf timeout", float("inf"), "--timeout")],
)
CASES.append(
    Case(
        "migrate",
        "downgrade without --allow-downgrade",
        lambda: mig.check_downgrade(6, 4, allow=False),
        "--allow-downgrade",
    )
)
CASES.append(
    Case(
        "migrate", "downgrade to nothing", lambda: mig.check_downgrade(6, 1, allow=False), "Back up"
    )
)

# -- 11. smoke arguments (the lone script's own error class)

BAD_SMOKE = [
    ("empty URL", "", {}, "give the OpenFGA HTTP API URL"),
    ("--help", "--help", {}, "like an option"),
    ("scheme-less", "fga.example.com", {}, "https://"),
    ("ftp", "ftp://fga.example.com", {}, "https://"),
    ("credentials in the URL", f"https://admin:{KEY}@fga.example.com", {}, "--token"),
    ("key in the query", f"https://fga.example.com/?key={KEY}", {}, "--token"),
    ("wait 1e9", "https://fga.example.com", {"wait": 1e9}, "up to 600"),
    ("negative wait", "https://fga.example.com", {"wait": -1.0}, "from 0"),
    ("nan wait", "https://fga.example.com", {"wait": float("nan")}, "seconds"),
    ("newline", "https://fga.example.com\n", {}, "newline"),
]
for _name, _url, _kw, _fix in BAD_SMOKE:
    CASES.append(
        Case(
            "smoke",
            f"smoke_command {_name}",
            lambda u=_url, k=_kw: smoke.smoke_command(u, **k),
            _fix,
            (KEY,),
            smoke.SmokeInputError,
        )
    )
    CASES.append(
        Case(
            "smoke",
            f"smoke {_name}",
            lambda u=_url, k=_kw: call("smoke", url=u, **k),
            _fix,
            (KEY,),
            smoke.SmokeInputError,
        )
    )
CASES.append(
    Case(
        "smoke",
        "key over plain http to a public host",
        lambda: smoke.smoke_command("http://fga.example.com", token=True),
        "https://",
        (KEY,),
        smoke.SmokeInputError,
    )
)
CASES.append(
    Case(
        "smoke",
        "verify: key over plain http to a public host",
        lambda: verify.check_transport("http://fga.example.com", KEY),
        "https://",
        (KEY,),
        verify.VerifyError,
    )
)

# -- 12. publish, sign, kubernetes, backup

BAD_REGISTRIES = [
    ("credentials", f"admin:{KEY}@ghcr.io", "--password"),
    ("scheme", "https://ghcr.io", "host alone"),
    ("path", "ghcr.io/acme", "namespace"),
    ("space", "ghcr .io", "host[:port]"),
    ("port too big", "registry.example.com:70000", "out of range"),
]
cases(
    "publish",
    publish.check_address,
    [(f"registry {n}", a, f) for n, a, f in BAD_REGISTRIES],
    secrets=(KEY,),
)
cases(
    "publish",
    publish.check_namespace,
    [
        ("namespace upper", "Acme", "lower-case"),
        ("namespace space", "ac me", "lower-case"),
        ("namespace empty part", "acme//x", "lower-case"),
    ],
)
cases(
    "backup",
    lambda k: backup.check_retention(k, None),
    [("keep zero", 0, "at least 1"), ("keep negative", -1, "at least 1")],
)
cases("backup", lambda d: backup.check_retention(3, d), [("max age zero", 0, "at least 1")])


# -- 13. wiring objects beside main.py (constructed as the engine would)

_DIGEST_REF = "ghcr.io/acme/openfga@sha256:" + "a" * 64
_KUBECONFIG = "kubeconfig-with-a-token-5f1c9e"


def _kube(**kw: Any) -> Kubernetes:
    kw.setdefault("postgres_config", dag.directory())
    kw.setdefault("kubeconfig", dag.set_secret("kubeconfig", _KUBECONFIG))
    return Kubernetes(**kw)


def _deploy_secrets() -> dict[str, dagger.Secret]:
    return {
        "migrator_password": secret(PW),
        "app_password": dag.set_secret("app", _GOOD["app"]),
        "readonly_password": dag.set_secret("ro", _GOOD["readonly"]),
        "preshared_keys": dag.set_secret("keys", KEY),
    }


_KUBE_SECRETS = (PW, KEY, _KUBECONFIG, _GOOD["app"], _GOOD["readonly"])
for _name, _run, _fix in [
    ("manifests by tag", lambda: _kube().manifests("ghcr.io/acme/openfga:v1.22.1"), "by digest"),
    (
        "manifests bad namespace",
        lambda: _kube(namespace="Bad_NS").manifests(_DIGEST_REF),
        "lowercase",
    ),
    (
        "manifests unknown flavor",
        lambda: _kube(flavor="helm").manifests(_DIGEST_REF),
        "statefulset",
    ),
    (
        "manifests postgres:17",
        lambda: _kube(postgres_image="postgres:17").manifests(_DIGEST_REF),
        "full version",
    ),
    (
        "manifests memory words",
        lambda: _kube(postgres_memory="lots").manifests(_DIGEST_REF),
        "512Mi",
    ),
    (
        "manifests storage with space",
        lambda: _kube(postgres_storage="10 GB").manifests(_DIGEST_REF),
        "10Gi",
    ),
    (
        "manifests one replica",
        lambda: _kube(openfga_replicas=1).manifests(_DIGEST_REF),
        "2 or more",
    ),
    (
        "manifests no config",
        lambda: _kube(postgres_config=None).manifests(_DIGEST_REF),
        "--postgres-config",
    ),
    (
        "manifests version newline",
        lambda: _kube(openfga_version="v1.22.1\n").manifests(_DIGEST_REF),
        "vMAJOR",
    ),
    (
        "deploy by tag",
        lambda: _kube().deploy("ghcr.io/acme/openfga:v1", **_deploy_secrets()),
        "by digest",
    ),
    (
        "deploy without kubeconfig",
        lambda: _kube(kubeconfig=None).deploy(_DIGEST_REF, **_deploy_secrets()),
        "--kubeconfig",
    ),
    (
        "dry-run bad namespace",
        lambda: _kube(namespace="-x").dry_run(_DIGEST_REF, **_deploy_secrets()),
        "lowercase",
    ),
]:
    CASES.append(Case("kubernetes", f"Kubernetes.{_name}", _run, _fix, _KUBE_SECRETS))

for _name, _run, _fix in [
    (
        "credentials in the address",
        lambda: Registry(address=f"admin:{KEY}@ghcr.io").repositories(),
        "--password",
    ),
    (
        "scheme in the address",
        lambda: Registry(address="https://ghcr.io").repositories(),
        "host alone",
    ),
    (
        "upper-case namespace",
        lambda: Registry(address="ghcr.io", namespace="Acme").repositories(),
        "lower-case",
    ),
    (
        "publish version 1.0",
        lambda: Registry(address="ghcr.io").publish("1.0", dag.directory(), dag.directory()),
        "vMAJOR",
    ),
    (
        "publish version newline",
        lambda: Registry(address="ghcr.io").publish("v1.22.1\n", dag.directory(), dag.directory()),
        "vMAJOR",
    ),
    (
        "publish user without password",
        lambda: Registry(address="ghcr.io", username="bot").publish(
            "v1.22.1", dag.directory(), dag.directory()
        ),
        "--password",
    ),
]:
    CASES.append(Case("publish", f"Registry.{_name}", _run, _fix, (KEY,)))


# -- pending (needs the main.py change in the report): the same refusals through the module


for _name, _uri, _fix in BAD_URIS:
    CASES.append(
        Case(
            "datastore URIs",
            f"dagger call migrate --datastore-uri {_name}",
            lambda u=_uri: call("migrate", datastore_uri=secret(u)),
            _fix,
            (PW, _uri),
        )
    )
for _name, _host, _kw, _fix in BAD_HOSTS:
    CASES.append(
        Case(
            "datastore URIs",
            f"dagger call migrate --host {_name}",
            lambda h=_host, k=_kw: call("migrate", host=h, password=secret(PW), **k),
            _fix,
            (PW,),
        )
    )
for _name, _kw, _fix in [
    ("as the app role", {"user": "openfga_app"}, "openfga_migrator"),
    ("--database upper case", {"database": "Openfga"}, "letter"),
    ("--app-role dash", {"app_role": "openfga-app"}, "letter"),
    ("URI with --password", {"datastore_uri": "URI", "password": "PW"}, "would be ignored"),
]:
    def _run_main(kw: dict[str, Any] = _kw) -> Any:
        given = {"URI": secret(_URI), "PW": secret(PW)}
        kw = {k: given.get(v, v) for k, v in kw.items()}
        if "datastore_uri" not in kw:
            kw |= {"host": "db.internal", "password": secret(PW)}
        return call("migrate", **kw)

    CASES.append(Case("migrate", f"dagger call migrate {_name}", _run_main, _fix, (PW, _URI)))
for _name, _kw, _fix in [
    ("--database upper case", {"database": "Bad"}, "letter"),
    ("no --postgres-config", {"postgres_config": None}, "--postgres-config"),
]:
    CASES.append(
        Case("postgres names", f"test-e2e {_name}", lambda kw=_kw: call("test_e2e", **kw), _fix)
    )
CASES.append(
    Case(
        "smoke",
        "dagger call smoke: key over plain http to a public host",
        lambda: call("smoke", url="http://fga.example.com", token=secret(KEY)),
        "https://",
        (KEY,),
        smoke.SmokeInputError,
    )
)


# ------------------------------------------------------------------ the one test


def printed_forms(value: str) -> set[str]:
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value), json.dumps(value)[1:-1]}
    return {f for f in forms if f}


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()  # no responders: any question about a run fails the case
    fake.install(monkeypatch)

    async def no_platform(client: Any) -> dagger.Platform:
        fake.events.append("defaultPlatform")
        raise AssertionError("the engine's platform was asked before the input was checked")

    monkeypatch.setattr(dagger.Client, "default_platform", no_platform)
    return fake


def _refusal(run: Callable[[], Any]) -> BaseException | None:
    try:
        result = run()
        if inspect.isawaitable(result):
            anyio.run(lambda: result)
    except Exception as err:  # the test inspects whatever was raised
        return err
    return None


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_before_any_engine_contact(engine: FakeEngine, c: Case) -> None:
    err = _refusal(c.run)
    assert err is not None, "accepted"
    assert isinstance(err, c.error), f"{type(err).__name__}: {err}"
    assert engine.events == [] and engine.asked == []
    text = f"{err}\n{err!r}\n{getattr(err, 'detail', '')}"
    assert c.fix in str(err), str(err)
    for value in c.secrets:
        for form in printed_forms(value):
            assert form not in text, "a secret in the message"


def test_the_catalogue_is_large_and_covers_every_class() -> None:
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)
