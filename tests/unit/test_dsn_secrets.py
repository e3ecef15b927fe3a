"""No secret text in any message: a property of every datastore URI and migrate error path.

Two formulations, both over a table of bad inputs with secrets of many lengths
and characters embedded where users put them (raw, percent-encoded, Go
%q-escaped, inside JSON logs):

- *non-interference*: the same input with every letter and digit of the secret
  changed gives exactly the same message, repr and detail. So no character of
  the secret reaches any of them, whatever its length (1-character secrets
  included): this is the sound form of "no substring of the secret".
- *absence*: for secrets of 4+ characters, neither the secret, nor any of its
  printed forms, nor any 4-character piece of it appears in the text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from openfga_release.recipes import dsn, migrate
from openfga_release.recipes.dsn import Dsn, DsnError
from openfga_release.recipes.errors import ReleaseError

SECRETS = [
    "Q", "7", "Qz", "a@", "Q7z", "x:y", "Zq8W", "Kx7#Vq2", "Pw9@ss:w/rd", "Zq8W%41Kx7",
    "Zq 8W x", 'Qz"7\\Wk', "Qz'7k`X", "Zq8Wé€Kx7", "Zq8W&Kx7=Pw9+", "Zq8W?Kx7#Pw9",
    "A" * 3 + "9" * 3, "Kx7Vq2" * 7, "Zq8W%zzKx7", "Zq8W%00Kx7",
]  # fmt: skip


def shifted(secret: str) -> str:
    """The same shape with every ASCII letter and digit changed (but the two after a %)."""
    out = []
    for i, c in enumerate(secret):
        if "%" in secret[max(0, i - 2) : i]:
            out.append(c)
        elif "a" <= c <= "z":
            out.append(chr((ord(c) - 97 + 7) % 26 + 97))
        elif "A" <= c <= "Z":
            out.append(chr((ord(c) - 65 + 7) % 26 + 65))
        elif "0" <= c <= "9":
            out.append(str((int(c) + 3) % 10))
        else:
            out.append(c)
    return "".join(out)


def go_quote(text: str) -> str:
    """Go's %q for the text (what url.Error prints)."""
    return json.dumps(text, ensure_ascii=False)


M = "openfga_migrator"

# Inputs for the URI checks: {raw} is the secret as typed, {enc} percent-encoded.
URI_TEMPLATES = [
    "postgres://" + M + ":{raw}@db.example.com/openfga",
    "postgres://" + M + ":{enc}@db.example.com/openfga",
    "postgres://" + M + ":{enc}@db.example.com/openfga?sslmode=prefer",
    "postgres://" + M + ":{enc}@db.example.com/openfga?sslmode=",
    "postgres://" + M + ":{enc}@evil.example.com,db.internal/openfga",
    "postgres://" + M + ":{enc}@db.internal/openfga?host=evil.example.com",
    "postgres://" + M + ":{enc}@db.internal/openfga?user=openfga_app",
    "postgres://" + M + ":{enc}@db.internal/openfga?password={enc}",
    "postgres://" + M + "@db.internal/openfga?password={raw}",
    "postgres://" + M + ":{enc}@db.internal/openfga?sslmode=Zz{enc}",
    "postgres://" + M + ":{enc}@db.internal/openfga?connect_timeout=Zz{enc}",
    "postgres://" + M + ":{enc}@db.internal/openfga?target_session_attrs=Zz{enc}",
    "postgres://" + M + ":{enc}@db.internal/openfga?zz{lower}=1",
    "postgres://" + M + ":{enc}@db.internal/openfga?sslmode=require&sslmode=disable",
    "postgres://" + M + ":{enc}@db.internal:Zz{raw}/openfga",
    "postgres://" + M + ":{raw}:{raw}@db.internal/openfga",
    "postgres://" + M + ":{raw}@db.internal/openfga#{raw}",
    "postgres://" + M + ":{enc}@[::1],db.internal/openfga",
    "postgres://" + M + ":{enc}@%2Ftmp/openfga",
    "postgres://" + M + ":{enc}@db.internal",
    "postgres://:{enc}@db.internal/openfga",
    "postgres:" + M + ":{raw}@db.internal/openfga",
    "postgres:/" + M + ":{raw}@db.internal/openfga",
    "postgresql:" + M + ":{enc}@db.internal/openfga",
    "mysql://" + M + ":{raw}@db.internal/openfga",
    "{raw}",
    "postgres://{raw}",
    "host=db.internal user=" + M + " password={raw} dbname=openfga",
    "host=db.internal user=" + M + " password='{raw}' sslmode=disable",
    "postgres://" + M + ":{enc}@db.internal/openfga?sslmode=require" + "&x=" * 1000,
]  # fmt: skip


def fill(template: str, secret: str) -> str:
    lower = "".join(c for c in secret.lower() if "a" <= c <= "z") or "q"
    return template.format(raw=secret, enc=quote(secret, safe=""), lower=lower)


def _outcome(call: Callable[[], Any]) -> str:
    """Everything a user could see: the message, repr and detail of an error, or the result."""
    try:
        result = call()
    except ReleaseError as err:
        return f"{type(err).__name__}|{err!s}|{err!r}|{getattr(err, 'detail', '')}"
    return f"ok|{result!s}|{result!r}"


def _assert_clean(secret: str, text: str) -> None:
    if len(secret) < 4:
        return  # short secrets: non-interference covers them
    for form in {secret, quote(secret, safe=""), go_quote(secret)[1:-1]}:
        assert form not in text
    pieces = {secret[i : i + 4] for i in range(len(secret) - 3)}
    leaked = [p for p in pieces if sum(c.isalnum() for c in p) >= 3 and p in text]
    assert not leaked, (leaked, text)


URI_CHECKS: dict[str, Callable[[str], Any]] = {
    "check_datastore_uri": dsn.check_datastore_uri,
    "check_uri_as_given": dsn.check_uri_as_given,
    "Dsn.parse": Dsn.parse,
    # The model of pgx: what it *answers* shows the input as pgx reads it (a host is a
    # host); only its errors are messages.
    "pgx_config": lambda text: dsn.pgx_config(text) and None,
}


@pytest.mark.parametrize("check", list(URI_CHECKS))
@pytest.mark.parametrize("template", URI_TEMPLATES)
def test_no_uri_error_carries_the_password(check: str, template: str) -> None:
    seen_error = False
    for secret in SECRETS:
        one = _outcome(lambda s=secret: URI_CHECKS[check](fill(template, s)))
        other = _outcome(lambda s=secret: URI_CHECKS[check](fill(template, shifted(s))))
        assert one == other, (secret, one, other)
        _assert_clean(secret, one)
        seen_error |= not one.startswith("ok|")
    if check in ("check_datastore_uri", "check_uri_as_given"):
        assert seen_error, "the template should reach an error path"


@pytest.mark.parametrize(
    "build",
    [
        lambda s: Dsn(host="db.example.com", database="openfga", user=M, password=s,
                      sslmode="disable"),
        lambda s: Dsn(host="evil.example.com,db.internal", database="openfga", user=M, password=s),
        lambda s: Dsn(host="db.internal", database="openfga", user=M, password=s, port=0),
        lambda s: Dsn(host="db.internal", database="", user=M, password=s),
        lambda s: Dsn(host="db.internal", database="openfga", user=M, password=s,
                      params={"password": s}),
        lambda s: Dsn(host="db.internal", database="openfga", user=M, password=s * 400),
        lambda s: Dsn(host="db.internal", database="openfga", user=M, password=s + "\x00"),
        lambda s: dsn.check_password(s * 1100, "--password"),
        lambda s: Dsn(host="db.internal", database="openfga", user=M, password=s),
    ],
)  # fmt: skip
def test_no_builder_error_carries_the_password(build: Callable[[str], Any]) -> None:
    for secret in SECRETS:
        one, other = (
            _outcome(lambda s=secret: build(s)),
            _outcome(lambda s=secret: build(shifted(s))),
        )
        assert one == other, (secret, one)
        _assert_clean(secret, one)


def test_a_too_long_password_is_refused_naming_where_it_came_from() -> None:
    with pytest.raises(DsnError, match=r"password in --password is 1025 bytes long; the limit"):
        dsn.check_password("x" * 1025, "--password")
    assert dsn.check_password("é" * 512, "--password") == "é" * 512  # 1024 bytes
    with pytest.raises(DsnError, match="password in the datastore URI is 3000 bytes"):
        dsn.check_datastore_uri(f"postgres://{M}:{'x' * 3000}@db.internal/openfga")
    with pytest.raises(DsnError, match=r"is 50\d\d characters long; the limit is 4096"):
        dsn.check_datastore_uri(f"postgres://{M}:{'x' * 5000}@db.internal/openfga")


# What OpenFGA and pgx print about a URI (raw = the URI as typed, unencoded).
def _tool_outputs(secret: str) -> list[str]:
    raw = f"postgres://{M}:{secret}@db.internal:5432/openfga"
    enc = f"postgres://{M}:{quote(secret, safe='')}@db.internal:5432/openfga"
    url_error = f"invalid database uri: parse {go_quote(raw)}: net/url: invalid userinfo"
    return [
        f"Error: {url_error}",
        json.dumps({"level": "error", "msg": "migrate failed", "error": url_error}),
        f"Error: invalid database uri: parse {go_quote(raw + ':5x')}: invalid port "
        f"{go_quote(':' + secret + '@db.internal:5x')} after host",
        f"Error: invalid database uri: parse {go_quote(raw)}: invalid URL escape "
        f"{go_quote(secret[:3])}",
        f"failed to open a connection: cannot parse `{raw}`: failed to parse as URL (invalid port)",
        f"failed to open a connection: cannot parse `host=db.internal password={secret}`: x",
        f"OPENFGA_DATASTORE_URI={enc}\nconnection refused",
        f'uri={enc} password authentication failed for user "{M}"',
        f'{{"msg":"db info","uri":{go_quote(enc)}}}\ni/o timeout',
    ]


def test_migrate_failures_never_carry_the_password() -> None:
    for secret in SECRETS:
        for i, (one_text, other_text) in enumerate(
            zip(_tool_outputs(secret), _tool_outputs(shifted(secret)), strict=True)
        ):
            given = f"postgres://{M}:{quote(secret, safe='')}@db.internal:5432/openfga"
            results = []
            for s, text, uri in ((secret, one_text, given), (shifted(secret), other_text, "")):
                uri = uri or f"postgres://{M}:{quote(s, safe='')}@db.internal:5432/openfga"
                outcome = _outcome(
                    lambda t=text, u=uri, p=s: migrate.check_result(1, "", t, [u, p])
                )
                results.append(outcome)
                results.append(migrate.redact(text, [uri, s]))
            assert results[0] == results[2], (secret, i, results[0])
            assert results[1] == results[3], (secret, i, results[1])
            _assert_clean(secret, results[0] + results[1])


def test_uris_are_redacted_even_without_the_secret_list() -> None:
    """Structure alone: userinfo, Go's parse "...", pgx's cannot parse `...`, password=."""
    for secret in SECRETS:
        for i, (one, other) in enumerate(
            zip(_tool_outputs(secret), _tool_outputs(shifted(secret)), strict=True)
        ):
            if i == 7 and len(secret) < 4:
                pass
            assert migrate.redact(one) == migrate.redact(other), (secret, i, migrate.redact(one))
            _assert_clean(secret, migrate.redact(one))


def test_go_quoted_uris_lose_the_whole_uri_not_just_its_start() -> None:
    text = 'Error: invalid database uri: parse "postgres://u:p\\"ss@db:5x/": invalid port ":5x"'
    assert migrate.redact(text) == (
        'Error: invalid database uri: parse "<datastore URI, redacted>": invalid port "<redacted>"'
    )
    js = json.dumps({"error": 'parse "postgres://u:p%40\\"ss@db/": net/url: invalid userinfo'})
    assert "ss@db" not in migrate.redact(js)
    assert "net/url: invalid userinfo" in migrate.redact(js)
    assert migrate.redact("user ab: ab@x postgres://u:ab@h/d tab", ["ab"]) == (
        "user ***: ***@x postgres://u:***@h/d tab"
    )
