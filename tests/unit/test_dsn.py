"""The datastore URI builder: encoding, TLS rules, redaction.

The encoding is also proven against the real parser that matters: OpenFGA's own
``migrate`` (Go ``url.Parse`` then pgx) either rejects a URI as invalid or gets
as far as dialling the database.
"""

from __future__ import annotations

import socket
import subprocess
from urllib.parse import unquote, urlsplit

import pytest
from openfga_release.recipes.dsn import Dsn, DsnError, check_sslmode, default_sslmode, is_private

from tests.support.gobuild_local import ensure_openfga

NASTY = "p@ss:w/rd?#%&= x+;~é"


@pytest.mark.parametrize(
    "password",
    [NASTY, "@", ":", "/", "?", "#", "%", "%41", "&", " ", "a b", "plain", "ü€"],
)
def test_password_round_trips_through_url_parsing(password: str) -> None:
    dsn = Dsn(host="db.internal", database="openfga", user="openfga_migrator", password=password)
    parts = urlsplit(dsn.secret_uri())
    assert parts.hostname == "db.internal"
    assert parts.port == 5432
    assert unquote(parts.password or "") == password
    assert unquote(parts.username or "") == "openfga_migrator"
    assert Dsn.parse(dsn.secret_uri()).password == password


def test_user_and_database_are_encoded_too() -> None:
    dsn = Dsn(host="10.0.0.5", database="my db/x", user="us@r:1", password="pw")
    parts = urlsplit(dsn.secret_uri())
    assert unquote(parts.username or "") == "us@r:1"
    assert unquote(parts.path[1:]) == "my db/x"
    back = Dsn.parse(dsn.secret_uri())
    assert (back.user, back.database, back.host) == ("us@r:1", "my db/x", "10.0.0.5")


def test_uri_shape() -> None:
    dsn = Dsn(host="db.example.com", database="openfga", user="app", password="pw", port=6432)
    assert dsn.secret_uri() == (
        "postgres://app:pw@db.example.com:6432/openfga?sslmode=require&connect_timeout=10"
    )
    ipv6 = Dsn(host="::1", database="d", user="u", connect_timeout=None)
    assert ipv6.public_uri() == "postgres://u@[::1]:5432/d?sslmode=prefer"
    assert Dsn.parse(ipv6.public_uri()).host == "::1"


def test_extra_params_are_kept_and_encoded() -> None:
    dsn = Dsn(
        host="pg.example.com", database="d", user="u", sslmode="verify-full",
        params={"sslrootcert": "/etc/ssl/my ca.pem"},
    )
    assert "sslrootcert=%2Fetc%2Fssl%2Fmy%20ca.pem" in dsn.public_uri()
    assert Dsn.parse(dsn.public_uri()).params == {"sslrootcert": "/etc/ssl/my ca.pem"}


@pytest.mark.parametrize(
    "host",
    ["localhost", "127.0.0.1", "127.8.9.1", "::1", "10.1.2.3", "172.16.0.9", "192.168.1.1",
     "fd00::5", "100.64.0.1", "postgres", "postgres.internal", "pg-rw.db.svc",
     "pg-rw.db.svc.cluster.local", "printer.local"],
)
def test_private_hosts_may_use_any_sslmode(host: str) -> None:
    assert is_private(host)
    assert default_sslmode(host) == "prefer"
    assert Dsn(host=host, database="d", user="u", sslmode="disable").sslmode == "disable"


@pytest.mark.parametrize(
    "host", ["db.example.com", "aged-dew-7tdv37m0.fra.unikraft.app", "8.8.8.8", "2001:4860::8888",
             "internal.example.com", "local.example.org"],
)
def test_public_hosts_need_require_or_stricter(host: str) -> None:
    assert not is_private(host)
    assert Dsn(host=host, database="d", user="u").sslmode == "require"
    for mode in ("require", "verify-ca", "verify-full"):
        assert check_sslmode(host, mode) == mode
    for mode in ("disable", "allow", "prefer"):
        with pytest.raises(DsnError, match=rf"sslmode={mode} for .*sslmode=require"):
            Dsn(host=host, database="d", user="u", password="s3cret!", sslmode=mode)


def test_public_host_with_sslmode_disable_in_a_uri_is_refused() -> None:
    with pytest.raises(DsnError, match="unencrypted"):
        Dsn.parse("postgres://u:s3cret@db.example.com:5432/openfga?sslmode=disable")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"host": ""}, "host"),
        ({"host": "a b"}, "host"),
        ({"host": "user@db"}, "host"),
        ({"database": ""}, "database"),
        ({"user": " app"}, "user"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"sslmode": "on"}, "sslmode"),
        ({"params": {"sslmode": "disable"}}, "own fields"),
    ],
)
def test_invalid_parts_are_named(kwargs: dict, fragment: str) -> None:
    args = {"host": "db.internal", "database": "openfga", "user": "u", "password": "TOPSECRET"}
    args.update(kwargs)
    with pytest.raises(DsnError, match=fragment) as err:
        Dsn(**args)
    assert "TOPSECRET" not in str(err.value)


def test_str_and_repr_never_show_the_password() -> None:
    dsn = Dsn(host="db.internal", database="openfga", user="app", password=NASTY)
    encoded = urlsplit(dsn.secret_uri()).password or ""
    for text in (str(dsn), repr(dsn), f"{dsn}", f"{dsn!r}", str([dsn]), str({"d": dsn})):
        assert NASTY not in text and encoded not in text
        assert "***" in text
    assert str(dsn) == "postgres://app:***@db.internal:5432/openfga?sslmode=prefer&connect_timeout=10"
    assert dsn.public_uri() == "postgres://app@db.internal:5432/openfga?sslmode=prefer&connect_timeout=10"
    assert "password=None" in repr(dsn.with_password(None))


def test_with_password_and_equality() -> None:
    a = Dsn(host="db.internal", database="openfga", user="app")
    b = a.with_password("x")
    assert b.password == "x" and a.password is None
    assert a == b  # the password is not part of the identity (nor of any comparison output)
    assert Dsn(host="h", database="d", user="u", password="").password is None


@pytest.mark.parametrize(
    "uri",
    [
        "postgres://app:pa#ss@db.internal:5432/openfga",  # '#' starts a fragment
        "postgres://app:pa/ss@db.internal:5432/openfga",  # '/' ends the authority
        "postgres://app:pass@db.internal:54x2/openfga",
        "postgres:///openfga",
    ],
)
def test_unencoded_uris_get_the_encoding_hint_without_the_password(uri: str) -> None:
    with pytest.raises(DsnError, match="percent-encoded") as err:
        Dsn.parse(uri)
    assert "pa#ss" not in str(err.value) and "pa/ss" not in str(err.value)
    assert "pass" not in str(err.value).replace("password", "")


def test_parse_rejects_other_schemes_and_bad_timeouts() -> None:
    with pytest.raises(DsnError, match="scheme"):
        Dsn.parse("mysql://u:p@db.internal/openfga")
    with pytest.raises(DsnError, match="connect_timeout"):
        Dsn.parse("postgres://u:p@db.internal/openfga?connect_timeout=soon")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openfga_migrate(uri: str) -> str:
    """Run the real ``openfga migrate`` on ``uri`` (nothing listens there): its error text."""
    proc = subprocess.run(
        [str(ensure_openfga()), "migrate", "--datastore-engine", "postgres", "--timeout", "1s"],
        env={"OPENFGA_DATASTORE_URI": uri, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


@pytest.mark.integration
def test_openfga_accepts_the_encoded_uri_and_rejects_the_raw_one() -> None:
    port = _closed_port()
    dsn = Dsn(host="127.0.0.1", port=port, database="openfga", user="migrator", password=NASTY)
    out = _openfga_migrate(dsn.secret_uri())
    # Parsed fine: it got as far as dialling the (closed) port.
    assert "invalid database uri" not in out
    assert "failed to initialize database connection" in out
    assert NASTY not in out

    raw = f"postgres://migrator:{NASTY}@127.0.0.1:{port}/openfga"
    out = _openfga_migrate(raw)
    assert "invalid database uri" in out


def test_uri_given_as_is_must_name_its_sslmode_for_public_hosts() -> None:
    """OpenFGA gets a secret URI unchanged: a missing sslmode would mean 'prefer' there."""
    from openfga_release.recipes.dsn import check_uri_as_given

    with pytest.raises(DsnError, match=r"names no sslmode.*sslmode=require") as err:
        check_uri_as_given("postgres://u:Pa55-word@db.example.com/openfga")
    assert "Pa55-word" not in str(err.value)
    assert check_uri_as_given("postgres://u:p@db.example.com/openfga?sslmode=require").sslmode == (
        "require"
    )
    # Private names may rely on the default.
    assert check_uri_as_given("postgres://u:p@postgres.internal/openfga").host == (
        "postgres.internal"
    )
    with pytest.raises(DsnError, match="sslmode=disable"):
        check_uri_as_given("postgres://u:p@db.example.com/openfga?sslmode=disable")
