"""Our reading of datastore URIs against pgx's recorded answers, and our verdicts.

Fast: the answers of the real pgx (v5.11.0, what OpenFGA v1.22.1 links) for every
corpus entry are recorded in ``tests/support/pgx_answers.json``;
``tests/real/test_pgx_probe.py`` checks the recording against the live pgx.
For each entry our :func:`pgx_config` must agree with pgx on every attempt
(host, port, TLS or not, in order), the user, the database and the password;
then our verdict is asserted, and every accepted URI must mean the same after
OpenFGA's migrate rewrite and to Go's url.Parse.
"""

from __future__ import annotations

import pytest
from openfga_release.recipes import dsn, migrate
from openfga_release.recipes.dsn import DsnError, PgxConfig, check_datastore_uri, pgx_config
from openfga_release.recipes.errors import ReleaseError

from tests.support.dsn_corpus import ACCEPT, CORPUS, S, recorded, same

ANSWERS = recorded()


def test_the_recording_covers_the_corpus() -> None:
    assert len(CORPUS) >= 60
    assert [(a["uri"], a["env"]) for a in ANSWERS] == [(u, e) for u, e, _ in CORPUS]
    assert len({(u, str(e)) for u, e, _ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=[c[0][:70] for c in CORPUS])
def test_our_reading_matches_pgx_and_the_verdict_holds(index: int) -> None:
    uri, env, verdict = CORPUS[index]
    real = ANSWERS[index]
    try:
        ours: PgxConfig | None = pgx_config(uri, env)
    except DsnError as refused:
        ours = None
        assert not real["pgx"]["ok"], f"pgx accepts what our reading refuses: {refused}"
    if ours is not None:
        same(ours, real["pgx"])

    if verdict is ACCEPT:
        config = check_datastore_uri(uri, env)
        assert ours is not None and config.attempts == ours.attempts
        # OpenFGA's migrate rewrites the URI with Go's url package; OpenFGA's server
        # takes the user from url.Parse when the password comes apart: all agree.
        same(config, real["migrate"])
        assert real["url_user"] == config.user
    else:
        with pytest.raises(DsnError, match=verdict) as err:
            check_datastore_uri(uri, env)
        assert S not in f"{err.value!s}{err.value!r}"


def test_every_host_pgx_tries_for_an_accepted_uri_is_private_or_tls() -> None:
    accepted = [i for i, (_, _, verdict) in enumerate(CORPUS) if verdict is ACCEPT]
    assert len(accepted) >= 20
    for i in accepted:
        for attempt in ANSWERS[i]["pgx"]["attempts"] + ANSWERS[i]["migrate"]["attempts"]:
            assert attempt["tls"] or dsn.is_private(attempt["host"]), CORPUS[i][0]


def test_the_migrator_guard_sees_the_user_pgx_uses() -> None:
    app = next(i for i, c in enumerate(CORPUS) if c[0].startswith("postgres://openfga_app:"))
    config = check_datastore_uri(CORPUS[app][0])
    assert config.user == ANSWERS[app]["pgx"]["user"] == "openfga_app"
    with pytest.raises(ReleaseError, match="may not run migrations"):
        migrate.check_migrator_user(config.user)
    with pytest.raises(ReleaseError, match="may not run migrations"):
        migrate.check_migrator_user(dsn.check_uri_as_given(CORPUS[app][0]).user)
    # ?user= is the user pgx would use, past the userinfo; refused before the guard.
    sneaky = next(i for i, c in enumerate(CORPUS) if "?user=openfga_app" in c[0])
    assert ANSWERS[sneaky]["pgx"]["user"] == "openfga_app"
    assert pgx_config(CORPUS[sneaky][0]).user == "openfga_app"
