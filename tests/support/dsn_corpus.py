"""The datastore URI corpus: what pgx makes of each entry and what our rule decides.

Shared by ``tests/unit/test_dsn_pgx.py`` (fast: our reading against pgx's
recorded answers, :data:`ANSWERS_FILE`) and ``tests/real/test_pgx_probe.py``
(the recorded answers against the live pgx, built from the module proxy).
Record again after changing the corpus: ``.venv/bin/python -m tests.support.dsn_corpus``.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from pathlib import Path
from typing import Any

from openfga_release.recipes import dsn

ANSWERS_FILE = Path(__file__).with_name("pgx_answers.json")

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


def cases() -> list[tuple[str, dict[str, str]]]:
    return [(uri, env) for uri, env, _ in CORPUS]


DEFAULT_HOST = "<default host>"  # pgx's defaultHost(): a socket directory of the machine
OS_USER = "<os user>"  # the OS user pgx logs in as when no user is named


def normalised(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer without what depends on the machine (its socket directory, its OS user)."""
    here, user = dsn._default_host(), getpass.getuser()
    out = json.loads(json.dumps(answer))
    for view in ("pgx", "migrate"):
        for attempt in out[view].get("attempts", []):
            attempt["host"] = DEFAULT_HOST if attempt["host"] == here else attempt["host"]
        out[view]["user"] = (
            OS_USER if out[view]["ok"] and out[view]["user"] == user else (out[view]["user"])
        )
        out[view].pop("error", None)  # pgx's wording is not part of the contract
    return out


def record(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"uri": uri, "env": env, **normalised(answer)}
        for (uri, env), answer in zip(cases(), answers, strict=True)
    ]


def recorded() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(ANSWERS_FILE.read_text())
    return data


def _sha(password: str | None) -> str | None:
    return None if password is None else hashlib.sha256(password.encode()).hexdigest()


def same(ours: dsn.PgxConfig, real: dict[str, Any]) -> None:
    assert real["ok"]
    here = dsn._default_host()
    assert [(DEFAULT_HOST if a.host == here else a.host, a.port, a.tls) for a in ours.attempts] == [
        (a["host"], a["port"], a["tls"]) for a in real["attempts"]
    ]
    assert (ours.user or OS_USER) == real["user"]
    assert ours.database == real["database"]
    assert _sha(ours.password) == (real.get("password_sha256") or None)
    assert (ours.password is not None) == real["password_set"]


if __name__ == "__main__":
    from tests.support.pgx import probe

    ANSWERS_FILE.write_text(json.dumps(record(probe(cases())), indent=1) + "\n")
