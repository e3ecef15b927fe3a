"""The datastore URI rule, held to the real pgx (the version OpenFGA v1.22.1 links).

Every corpus entry goes through ``tests/support/pgxprobe`` (pgx.ParseConfig,
plus OpenFGA's migrate rewrite of the URI) and through our
:func:`~openfga_release.recipes.dsn.pgx_config`: they must agree on every
attempt (host, port, TLS or not, in order), the user, the database and the
password. Then our verdict (accept, or refuse naming the problem) is asserted,
and every accepted URI must mean the same to pgx after OpenFGA's rewrite and to
Go's url.Parse (the user OpenFGA's server takes when a password is given apart).
"""

from __future__ import annotations

import getpass
import hashlib
import re
from typing import Any

import pytest
from openfga_release.recipes import migrate
from openfga_release.recipes.dsn import (
    Dsn,
    DsnError,
    PgxConfig,
    check_datastore_uri,
    pgx_config,
)
from openfga_release.recipes.errors import ReleaseError

from tests.support.pgx import probe

pytestmark = pytest.mark.integration

S = "s3cr3t-Pw"
M = "openfga_migrator"
CA = "/etc/ssl/certs/ca-certificates.crt"
ACCEPT = None

# (uri, PG* environment, verdict: ACCEPT or a regex the refusal must match)
CORPUS: list[tuple[str, dict[str, str], str | None]] = [
    # private hosts: any sslmode
    (f"postgres://{M}:{S}@db.internal:5432/openfga", {}, ACCEPT),
    (f"postgresql://{M}:{S}@db.internal/openfga?sslmode=disable", {}, ACCEPT),
    (f"postgres://{M}:{S}@localhost/openfga?sslmode=disable", {}, ACCEPT),
    (f"postgres://{M}:{S}@127.0.0.1/openfga", {}, ACCEPT),
    (f"postgres://{M}:{S}@10.0.0.5/openfga?sslmode=allow", {}, ACCEPT),
    (f"postgres://{M}:{S}@postgres/openfga?sslmode=prefer", {}, ACCEPT),
    (f"postgres://{M}:{S}@[::1]:5432/openfga", {}, ACCEPT),
    (f"postgres://{M}:{S}@[::1]:5432/openfga?sslmode=disable", {}, ACCEPT),
    (f"postgres://{M}:{S}@pg-rw.db.svc.cluster.local:5432/openfga", {}, ACCEPT),
    # public hosts: require or stricter, named in the URI
    (f"postgres://{M}:{S}@db.example.com/openfga?sslmode=require", {}, ACCEPT),
    (f"postgres://{M}:{S}@db.example.com/openfga?sslmode=verify-ca", {}, ACCEPT),
    (f"postgres://{M}:{S}@db.example.com/openfga?sslmode=verify-full", {}, ACCEPT),
    (f"postgres://{M}:{S}@aged-dew.fra.unikraft.app:5432/openfga?sslmode=verify-full", {}, ACCEPT),
    (f"postgres://{M}:{S}@db.example.com/openfga?sslrootcert=system", {}, ACCEPT),
    (f"postgres://{M}:{S}@db.example.com/openfga?sslmode=verify-full&sslrootcert={CA}", {},
     ACCEPT),
    # sslrootcert=system makes pgx use verify-full whatever sslmode says
    (f"postgres://{M}:{S}@db.example.com/openfga?sslmode=disable&sslrootcert=system", {}, ACCEPT),
    (f"postgres://{M}:{S}@db.example.com/openfga", {}, r"names no sslmode.*sslmode=require"),
    (f"postgres://{M}:{S}@db.example.com/openfga?sslmode=", {}, r"empty sslmode=.*prefer"),
    (f"postgres://{M}:{S}@db.example.com/openfga?sslmode=prefer", {},
     r"sslmode=prefer for db\.example\.com"),
    (f"postgres://{M}:{S}@db.example.com/openfga?sslmode=allow", {}, r"sslmode=allow for"),
    (f"postgres://{M}:{S}@db.example.com/openfga?sslmode=disable", {}, r"sslmode=disable for"),
    (f"postgres://{M}:{S}@8.8.8.8/openfga?sslmode=allow", {}, r"8\.8\.8\.8"),
    (f"postgres://{M}:{S}@[2001:4860::8888]/openfga", {}, r"names no sslmode"),
    (f"postgres://{M}:{S}@[2001:4860::8888]:5432/openfga?sslmode=require", {}, ACCEPT),
    (f"postgres://{M}:{S}@db.internal/openfga?sslmode=DISABLE", {}, r"sslmode is not one of"),
    (f"postgres://{M}:{S}@db.internal/openfga?sslmode=require@evil.example.com", {},
     r"accepted shape|sslmode is not one of"),
    # query parameters that override the URL's parts
    (f"postgres://{M}:{S}@db.internal/openfga?host=evil.example.com", {}, r"query sets host="),
    (f"postgres://{M}:{S}@db.internal/openfga?sslmode=require&host=evil.example.com", {},
     r"query sets host="),
    (f"postgres://{M}:{S}@db.internal/openfga?user=openfga_app", {}, r"query sets user="),
    (f"postgres://{M}:{S}@db.internal/openfga?password=other", {}, r"query sets password="),
    (f"postgres://{M}:{S}@db.internal/openfga?dbname=other", {}, r"query sets dbname="),
    (f"postgres://{M}:{S}@db.internal/openfga?port=6543", {}, r"query sets port="),
    (f"postgres://{M}:{S}@db.internal/openfga?ssl=true", {}, r"ssl=\.\.\..*sslmode=require"),
    (f"postgres://{M}:{S}@db.internal/openfga?ssl=true&sslmode=disable", {}, r"ssl="),
    (f"postgres://{M}:{S}@db.internal/openfga?sslmode=require&sslmode=disable", {},
     r"sslmode twice"),
    (f"postgres://{M}:{S}@db.internal/openfga?service=x", {}, r"service is not one"),
    (f"postgres://{M}:{S}@db.internal/openfga?options=-c%20role%3Dpostgres", {},
     r"options is not one"),
    (f"postgres://{M}:{S}@db.internal/openfga?sslnegotiation=direct", {}, r"sslnegotiation"),
    # host lists: every host pgx would try
    (f"postgres://{M}:{S}@evil.example.com,db.internal/openfga", {},
     r"for evil\.example\.com names no sslmode"),
    (f"postgres://{M}:{S}@evil.example.com,db.internal/openfga?sslmode=prefer", {},
     r"sslmode=prefer for evil\.example\.com"),
    (f"postgres://{M}:{S}@db.internal,evil.example.com/openfga?sslmode=prefer", {},
     r"sslmode=prefer for evil\.example\.com"),
    (f"postgres://{M}:{S}@db.internal,evil.example.com/openfga?sslmode=require", {}, ACCEPT),
    (f"postgres://{M}:{S}@db.internal:5433,db2.internal:5434/openfga", {}, ACCEPT),
    (f"postgres://{M}:{S}@db.internal,db2.internal:5434/openfga", {}, ACCEPT),
    (f"postgres://{M}:{S}@db.internal:5432,db.example.com:5432/openfga?sslmode=verify-ca", {},
     ACCEPT),
    (f"postgres://{M}:{S}@evil.example.com%2Cdb.internal/openfga", {}, r"percent-encoded"),
    (f"postgres://{M}:{S}@[::1],db.internal/openfga", {}, r"IPv6 address with other hosts"),
    # users, passwords and databases: percent-encoding
    (f"postgres://{M}:p%40ss%3Aw%2Frd%25@db.internal/openfga", {}, ACCEPT),
    (f"postgres://us%40r:{S}@db.internal/openfga", {}, ACCEPT),
    (f"postgres://{M}:{S}@db.internal/open%20fga", {}, ACCEPT),
    (f"postgres://{M}@db.internal/openfga", {}, ACCEPT),
    (f"postgres://{M}:@db.internal/openfga", {}, ACCEPT),
    ("postgres://openfga_app:x@db.internal/openfga", {}, ACCEPT),  # refused by the migrator guard
    (f"postgres://{M}:p@ss@db.internal/openfga", {}, r"more than one @"),
    (f"postgres://{M}:pa#ss@db.internal/openfga", {}, r"holds a #"),
    (f"postgres://{M}:pa ss@db.internal/openfga", {}, r"space"),
    (f"postgres://{M}:pa/ss@db.internal/openfga", {}, r"accepted shape"),
    (f"postgres://{M}:p%zzss@db.internal/openfga", {}, r"accepted shape"),
    (f"postgres://{M}:p%00ss@db.internal/openfga", {}, r"accepted shape|%00"),
    ("postgres://db.internal?x=@evil.example.com/openfga", {}, r"accepted shape"),
    ("postgres://db.internal/openfga", {}, r"names no user"),
    (f"postgres://{M}:{S}@db.internal", {}, r"names no database"),
    # hosts and ports
    (f"postgres://{M}:{S}@%2Ftmp/openfga", {}, r"percent-encoded"),
    (f"postgres://{M}:{S}@/openfga", {}, r"names no host"),
    (f"postgres://{M}:{S}@db.internal:0/openfga", {}, r"port"),
    (f"postgres://{M}:{S}@db.internal:65536/openfga", {}, r"port"),
    (f"postgres://{M}:{S}@db.internal:54x2/openfga", {}, r"accepted shape"),
    (f"postgres://{M}:{S}@[::1/openfga", {}, r"accepted shape"),
    # other parameters
    (f"postgres://{M}:{S}@db.internal/openfga?target_session_attrs=read-write", {}, ACCEPT),
    (f"postgres://{M}:{S}@db.internal/openfga?sslmode=require&target_session_attrs=primary", {},
     ACCEPT),
    (f"postgres://{M}:{S}@db.internal/openfga?target_session_attrs=bogus", {},
     r"target_session_attrs"),
    (f"postgres://{M}:{S}@db.internal/openfga?connect_timeout=10", {}, ACCEPT),
    (f"postgres://{M}:{S}@db.internal/openfga?connect_timeout=-1", {}, r"connect_timeout"),
    (f"postgres://{M}:{S}@db.internal/openfga?application_name=openfga", {}, ACCEPT),
    (f"postgres://{M}:{S}@db.example.com/openfga?sslmode=require&sslcert=/x.crt", {},
     r"sslcert and sslkey"),
    # the environment pgx reads
    (f"postgres://{M}:{S}@db.internal/openfga", {"PGSSLMODE": "disable"}, r"PGSSLMODE"),
    (f"postgres://{M}:{S}@db.example.com/openfga?sslmode=require", {"PGHOST": "evil.example.com"},
     r"PGHOST"),
    ("", {"PGHOST": "evil.example.com", "PGUSER": M}, r"PGHOST|PGUSER"),
    # not URLs
    (f"host=db.internal user={M} password={S} dbname=openfga sslmode=disable", {},
     r"key=value connection string"),
    (f"host=evil.example.com,db.internal user={M} sslmode=prefer", {}, r"key=value"),
    (f"host='db.internal' user={M} password='p\\'s s' dbname=openfga", {}, r"key=value"),
    ("user= host=db.internal dbname=openfga port=5433", {}, r"key=value"),
    (f"postgres:{M}:{S}@db.internal/openfga", {}, r"lacks the //"),
    (f"mysql://{M}:{S}@db.internal/openfga", {}, r"scheme is not postgres"),
]  # fmt: skip


def _sha(password: str | None) -> str | None:
    return None if password is None else hashlib.sha256(password.encode()).hexdigest()


def _same(ours: PgxConfig, real: dict[str, Any]) -> None:
    assert real["ok"], real.get("error")
    assert [(a.host, a.port, a.tls) for a in ours.attempts] == [
        (a["host"], a["port"], a["tls"]) for a in real["attempts"]
    ]
    assert (ours.user or getpass.getuser()) == real["user"]
    assert ours.database == real["database"]
    assert _sha(ours.password) == (real.get("password_sha256") or None)


@pytest.fixture(scope="module")
def answers() -> list[dict[str, Any]]:
    return probe([(uri, env) for uri, env, _ in CORPUS])


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 60
    assert len({uri for uri, env, _ in CORPUS if not env}) == len([e for e in CORPUS if not e[1]])


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=[c[0][:60] for c in CORPUS])
def test_our_reading_matches_pgx_and_the_verdict_holds(
    index: int, answers: list[dict[str, Any]]
) -> None:
    uri, env, verdict = CORPUS[index]
    real = answers[index]
    try:
        ours: PgxConfig | None = pgx_config(uri, env)
    except DsnError as refused:
        ours = None
        assert not real["pgx"]["ok"], f"pgx accepts what our reading refuses: {refused}"
    if ours is not None:
        _same(ours, real["pgx"])

    if verdict is ACCEPT:
        config = check_datastore_uri(uri, env)
        assert config.attempts == ours.attempts if ours else False
        # OpenFGA's migrate rewrites the URI with Go's url package; the server takes
        # the user from url.Parse when a password comes apart: both must agree.
        _same(config, real["migrate"])
        assert real["url_user"] == config.user
    else:
        with pytest.raises(DsnError, match=verdict) as err:
            check_datastore_uri(uri, env)
        assert S not in str(err.value) and "p@ss" not in str(err.value)


def test_every_public_host_pgx_would_try_gets_tls_on_every_attempt(
    answers: list[dict[str, Any]],
) -> None:
    """The property itself, on pgx's own answers for every URI we accept."""
    from openfga_release.recipes.dsn import is_private

    accepted = [i for i, (_, _, verdict) in enumerate(CORPUS) if verdict is ACCEPT]
    assert len(accepted) >= 20
    for i in accepted:
        for attempt in answers[i]["pgx"]["attempts"] + answers[i]["migrate"]["attempts"]:
            assert attempt["tls"] or is_private(attempt["host"]), CORPUS[i][0]


def test_the_migrator_guard_sees_the_user_pgx_uses(answers: list[dict[str, Any]]) -> None:
    app = next(i for i, c in enumerate(CORPUS) if c[0].startswith("postgres://openfga_app:"))
    config = check_datastore_uri(CORPUS[app][0])
    assert config.user == answers[app]["pgx"]["user"] == "openfga_app"
    with pytest.raises(ReleaseError, match="may not run migrations"):
        migrate.check_migrator_user(config.user)
    # ?user= is what pgx would use, past the userinfo: refused before the guard.
    sneaky = next(i for i, c in enumerate(CORPUS) if "?user=openfga_app" in c[0])
    assert answers[sneaky]["pgx"]["user"] == "openfga_app"
    assert pgx_config(CORPUS[sneaky][0]).user == "openfga_app"


NASTY = ["p@ss:w/rd?#%&= x+;~é", "@", "%41", "a b", "ü€", "'\\\"", "-_.~", "x" * 1024]


def test_every_uri_the_builder_writes_is_read_by_pgx_as_built() -> None:
    dsns = [
        Dsn(host=h, database=d, user=u, password=pw, port=port, sslmode=mode)
        for pw in NASTY
        for h, d, u, port, mode in [
            ("db.internal", "openfga", M, 5432, ""),
            ("db.example.com", "my db/x", "us@r:1", 6432, "verify-full"),
            ("::1", "openfga", M, 5433, "disable"),
        ]
    ]
    uris = [d.secret_uri() for d in dsns] + [d.public_uri() for d in dsns]
    answers = probe([(u, {}) for u in uris])
    for uri, dsn, real in zip(uris, dsns + dsns, answers, strict=True):
        config = check_datastore_uri(uri)
        _same(config, real["pgx"])
        _same(config, real["migrate"])
        assert real["url_user"] == dsn.user == config.user
        assert config.hosts == (dsn.host,)
        expected = dsn.password if uri == dsn.secret_uri() else None
        assert config.password == expected


def test_a_refused_uri_never_echoes_its_password_even_from_pgx() -> None:
    """pgx's own errors redact best-effort; ours quote nothing of the input."""
    for uri, env, verdict in CORPUS:
        if verdict is ACCEPT:
            continue
        try:
            check_datastore_uri(uri, env)
        except DsnError as err:
            assert not re.search(re.escape(S), f"{err!s}{err!r}")
