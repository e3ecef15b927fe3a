"""The datastore URI rule, held to the live pgx (the version OpenFGA v1.22.1 links).

``tests/support/pgxprobe`` (built from the module proxy) answers what
pgx.ParseConfig makes of every corpus entry, as given and after OpenFGA's
migrate rewrite. Those answers must be exactly the recording the fast unit
tests (``tests/unit/test_dsn_pgx.py``) hold our reading to; and every URI our
builder writes must be read by pgx as built.
"""

from __future__ import annotations

import pytest
from openfga_release.recipes.dsn import Dsn, check_datastore_uri

from tests.support.dsn_corpus import M, cases, record, recorded, same
from tests.support.pgx import probe

pytestmark = pytest.mark.integration


def test_the_recorded_answers_are_the_live_pgx_answers() -> None:
    live = record(probe(cases()))
    for mine, theirs in zip(recorded(), live, strict=True):
        assert mine == theirs, f"re-record with python -m tests.support.dsn_corpus: {mine['uri']}"


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
        same(config, real["pgx"])
        same(config, real["migrate"])
        assert real["url_user"] == dsn.user == config.user
        assert config.hosts == (dsn.host,)
        assert config.password == (dsn.password if uri == dsn.secret_uri() else None)
