"""pgx's reading rules, one by one, and the policy's refusals, each with its exact message.

The corpus (test_dsn_pgx.py) holds our reading to pgx on whole URIs; these pin
each rule of pgconn.ParseConfig v5.11.0 and each refusal on its own, so a change
to one of them fails a test that names it.
"""

from __future__ import annotations

import pytest
from openfga_release.recipes import dsn
from openfga_release.recipes.dsn import (
    Attempt,
    Dsn,
    DsnError,
    check_datastore_uri,
    check_password,
    check_uri_as_given,
    pgx_config,
)

M = "openfga_migrator"
U = f"postgres://{M}:pw@"


def attempts(text: str, env: dict[str, str] | None = None) -> list[tuple[str, int, bool]]:
    return [(a.host, a.port, a.tls) for a in pgx_config(text, env).attempts]


def refused(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(DsnError) as err:
        pgx_config(text, env)
    return str(err.value)


@pytest.fixture(autouse=True)
def socket_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """pgx's default host is the first socket directory that exists: pin it."""
    monkeypatch.setattr(dsn, "_SOCKET_DIRS", ("/nonexistent-socket-dir", "/"))


# -- hosts, ports and TLS attempts ------------------------------------------------


def test_sslmodes_give_pgx_attempts_in_its_order() -> None:
    base = "postgres://u@h/d?sslmode="
    assert attempts(base + "disable") == [("h", 5432, False)]
    assert attempts(base + "allow") == [("h", 5432, False), ("h", 5432, True)]
    assert attempts(base + "prefer") == [("h", 5432, True), ("h", 5432, False)]
    assert attempts(base) == attempts(base + "prefer") == attempts("postgres://u@h/d")
    for mode in ("require", "verify-ca", "verify-full"):
        assert attempts(base + mode) == [("h", 5432, True)]
        assert pgx_config(base + mode).sslmode == mode
    assert pgx_config(base).sslmode == "prefer"
    assert refused(base + "on") == (
        "the datastore URI's sslmode is not one of "
        "disable, allow, prefer, require, verify-ca, verify-full"
    )


def test_sslrootcert_system_and_direct_negotiation_raise_the_mode() -> None:
    assert attempts("postgres://u@h/d?sslrootcert=system&sslmode=disable") == [("h", 5432, True)]
    assert pgx_config("postgres://u@h/d?sslrootcert=system&sslmode=bogus").sslmode == "verify-full"
    assert attempts("postgres://u@h/d?sslnegotiation=direct") == [("h", 5432, True)]
    assert pgx_config("postgres://u@h/d?sslnegotiation=direct").sslmode == "require"
    assert attempts("postgres://u@h/d?sslnegotiation=direct&sslmode=allow")[0][2] is False
    assert attempts("postgres://u@h/d?sslnegotiation=postgres") == attempts("postgres://u@h/d")
    assert attempts("postgres://u@h/d?sslrootcert=/ca.pem&sslmode=disable") == [("h", 5432, False)]


def test_ssl_true_is_require_only_when_it_comes_last() -> None:
    assert pgx_config("postgres://u@h/d?ssl=true").sslmode == "require"
    assert pgx_config("postgres://u@h/d?sslmode=disable&ssl=true").sslmode == "require"
    assert pgx_config("postgres://u@h/d?ssl=true&sslmode=disable").sslmode == "disable"
    assert pgx_config("postgres://u@h/d?ssl=false").sslmode == "prefer"
    assert pgx_config("postgres://u@h/d?ssl=true").given == ("user", "host", "database", "sslmode")
    assert "ssl" in pgx_config("postgres://u@h/d?ssl=false").given


def test_client_certificates_go_in_pairs() -> None:
    msg = "sslcert and sslkey go together: give both or neither"
    assert refused("postgres://u@h/d?sslmode=require&sslcert=/c") == msg
    assert refused("postgres://u@h/d?sslkey=/k") == msg
    assert attempts("postgres://u@h/d?sslmode=require&sslcert=/c&sslkey=/k") == [("h", 5432, True)]
    assert attempts("postgres://u@h/d?sslmode=disable&sslcert=/c") == [("h", 5432, False)]


def test_host_lists_pair_with_one_port_or_one_per_host() -> None:
    assert attempts("postgres://u@a:1,b:2/d?sslmode=require") == [("a", 1, True), ("b", 2, True)]
    assert attempts("postgres://u@a,b:2/d?sslmode=require") == [("a", 5432, True), ("b", 2, True)]
    assert attempts("host=a,b port=6000 sslmode=disable") == [
        ("a", 6000, False),
        ("b", 6000, False),
    ]
    assert attempts("host=a,b,c port=1,,3 sslmode=disable") == [
        ("a", 1, False), ("b", 5432, False), ("c", 3, False),
    ]  # fmt: skip
    assert refused("host=a,b,c port=1,2") == (
        "the datastore URI gives 2 ports for 3 hosts: give one port for all, or one per host"
    )
    assert refused("postgres://u@a,b,c/d?port=1,2").startswith("the datastore URI gives 2 ports")
    assert attempts("postgres://u@a%2Cb/d?sslmode=disable") == [
        ("a", 5432, False),
        ("b", 5432, False),
    ]


def test_query_host_and_port_override_the_authority() -> None:
    assert attempts("postgres://u@a:1/d?host=b&sslmode=disable") == [("b", 1, False)]
    assert attempts("postgres://u@a:1/d?port=2&sslmode=disable") == [("a", 2, False)]
    assert attempts("postgres://u@a/d?host=b,c&sslmode=disable") == [
        ("b", 5432, False),
        ("c", 5432, False),
    ]


def test_ports_are_numbers_from_1_to_65535() -> None:
    msg = "a port of the datastore URI is not a number from 1 to 65535"
    for bad in ("0", "65536", "-1", "+1", "x", "1.5", " 1"):
        assert refused(f"host=h port='{bad}'") == msg
    assert attempts("host=h port=65535 sslmode=disable") == [("h", 65535, False)]
    assert attempts("host=h port=1 sslmode=disable") == [("h", 1, False)]
    assert attempts("postgres://u@h:/d?sslmode=disable") == [("h", 5432, False)]


def test_empty_and_socket_hosts() -> None:
    assert attempts("host=a,,b sslmode=disable") == [
        ("a", 5432, False), ("/", 5432, False), ("b", 5432, False),
    ]  # fmt: skip
    assert attempts("postgres://u@/d") == [("/", 5432, False)]
    assert attempts("host=/var/run/postgresql sslmode=require") == [
        ("/var/run/postgresql", 5432, False)
    ]
    # No TCP host: pgx never reads the TLS settings, so a bad sslmode passes.
    assert attempts("host=/tmp sslmode=bogus") == [("/tmp", 5432, False)]
    assert attempts("host=C:\\\\pg sslmode=require") == [("C:\\pg", 5432, False)]
    assert Attempt("/tmp", 1, False).unix and Attempt("C:\\x", 1, False).unix
    assert not Attempt("c:\\x", 1, False).unix and not Attempt("h", 1, False).unix


def test_default_host_is_the_first_socket_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dsn, "_SOCKET_DIRS", ("/nonexistent-a", "/nonexistent-b"))
    assert attempts("user=u sslmode=disable") == [("localhost", 5432, False)]
    monkeypatch.setattr(dsn, "_SOCKET_DIRS", ("/nonexistent-a", "/", "/tmp"))
    assert attempts("user=u") == [("/", 5432, False)]


def test_ipv6_hosts() -> None:
    assert attempts("postgres://u@[::1]:6/d?sslmode=disable") == [("::1", 6, False)]
    assert attempts("postgres://u@[::1],[fe80::1]/d?sslmode=disable") == [
        ("::1", 5432, False), ("fe80::1", 5432, False),
    ]  # fmt: skip
    assert attempts("postgres://u@[::1]?sslmode=disable") == [("::1", 5432, False)]
    assert refused("postgres://u@[::1/d") == "an IPv6 address in the datastore URI has no closing ]"
    assert refused("postgres://u@[]/d") == "an IPv6 address in the datastore URI is empty ([])"
    assert refused("postgres://u@[::1]x/d") == (
        "an IPv6 address in the datastore URI is not followed by : or /"
    )


# -- users, passwords, databases, decoding ------------------------------------------


def test_userinfo_path_and_query_parts() -> None:
    c = pgx_config("postgresql://us%40r:p%3Aw@h/my%20db?application_name=x")
    assert (c.user, c.password, c.database, c.form) == ("us@r", "p:w", "my db", "url")
    assert pgx_config("postgres://u:@h/d").password is None
    assert pgx_config("postgres://u@h/d").password is None
    assert pgx_config("postgres://:pw@h/d").user == ""
    assert pgx_config("postgres://:pw@h/d").password == "pw"
    assert pgx_config("postgres://u:a:b@h/d").password == "a:b"
    assert pgx_config("postgres://h/").database == ""
    assert pgx_config("postgres://h/d?user=x&password=y&dbname=z").user == "x"
    assert pgx_config("postgres://u:p@h/d?password=y").password == "y"
    assert pgx_config("postgres://u@h/d?dbname=z").database == "z"
    assert pgx_config("postgres://u@h/d?database=z").database == "z"
    assert pgx_config("postgres://h?x=@evil/d").user == "h?x="
    assert pgx_config("postgres://u@h/d/e").database == "d/e"
    assert pgx_config("postgres://u@h/d?a=1").given == ("user", "host", "database", "a")


def test_percent_decoding_follows_libpq() -> None:
    assert pgx_config("postgres://%75%2a@h/d").user == "u*"
    assert pgx_config("postgres://u:%20a%20@h/d").password == " a "
    assert pgx_config("postgres://u:  ab  @h/d").password == "ab"  # outer spaces trimmed
    assert pgx_config("postgres://u@h/d?application_name=%c3%a9").given[-1] == "application_name"
    assert refused("postgres://u:a b@h/d") == (
        "the datastore URI holds a space: percent-encode it as %20"
    )
    for bad in ("%", "%4", "%G0", "%0G", "%%"):
        assert refused(f"postgres://u:{bad}@h/d") == (
            "a % in the datastore URI does not start a %XX escape"
        )
    assert refused("postgres://u:%00@h/d") == "the datastore URI holds %00, which pgx forbids"
    assert pgx_config("postgres://u:%0a%FF%aF@h/d").password == "\n\udcff\udcaf"


def test_query_pairs() -> None:
    assert refused("postgres://u@h/d?a") == "a query parameter of the datastore URI has no ="
    assert refused("postgres://u@h/d?&a=1") == "a query parameter of the datastore URI has no ="
    assert refused("postgres://u@h/d?a=1=2") == (
        "a query parameter of the datastore URI has a second ="
    )
    assert pgx_config("postgres://u@h/d?a=1&").given[-1] == "a"
    assert pgx_config("postgres://u@h/d?sslmode=disable&sslmode=require").sslmode == "require"


def test_keyword_value_strings() -> None:
    c = pgx_config("  host=h\tuser='a b' password='p\\'q\\\\' dbname = d \n sslmode=disable  ")
    assert (c.user, c.password, c.database, c.form) == ("a b", "p'q\\", "d", "keyword")
    assert pgx_config("host=h user=u password=a\\ b sslmode=disable").password == "a b"
    assert pgx_config("host=h user=u password=ab\\").password == "ab"
    # pgx skips the spaces after =, so "user= sslmode=disable" names user "sslmode=disable".
    assert pgx_config("host=h user= sslmode=disable").user == "sslmode=disable"
    assert pgx_config("host=h user='' sslmode=disable").user == ""
    assert "user" not in pgx_config("host=h user='' sslmode=disable").given
    assert pgx_config("host=h user=u password='' sslmode=disable").password is None
    assert pgx_config("host=h password=''").password is None
    assert refused("host") == "the datastore connection string is not key=value pairs"
    assert refused("host=h user") == "the datastore connection string is not key=value pairs"
    assert refused("ho st=h") == "a key of the datastore connection string holds a space"
    assert refused("=h") == "the datastore connection string has a value without a key"
    assert refused("host='h") == "a quoted value in the datastore connection string is not closed"
    assert refused("host='h\\") == "a quoted value in the datastore connection string is not closed"
    assert (
        refused("host='h\\'") == "a quoted value in the datastore connection string is not closed"
    )
    assert pgx_config("").form == "keyword"


def test_environment_defaults_and_what_overrides_them() -> None:
    env = {"PGHOST": "e", "PGPORT": "7", "PGUSER": "eu", "PGDATABASE": "ed", "PGSSLMODE": "disable",
           "PGPASSWORD": "ep", "HOME": "/x", "PGNOTREAD": "1"}  # fmt: skip
    c = pgx_config("", env)
    assert (c.attempts, c.user, c.database, c.password) == (
        (Attempt("e", 7, False),),
        "eu",
        "ed",
        "ep",
    )
    c = pgx_config("postgres://u@h/d?sslmode=require", env)
    assert (c.attempts, c.user, c.database) == ((Attempt("h", 7, True),), "u", "d")
    assert pgx_config("", {"PGHOST": "", "PGSSLMODE": ""}).attempts[0].host == "/"
    assert pgx_config("", {"PGSSLMODE": "require", "PGHOST": "x"}).sslmode == "require"
    assert set(dsn.PGX_ENV) >= {"PGHOST", "PGSSLMODE", "PGSERVICE", "PGSSLROOTCERT", "PGOPTIONS"}
    assert len(dsn.PGX_ENV) == 24


def test_other_settings_pgx_validates() -> None:
    for ok in ("10", "+5", "0", "-0"):
        pgx_config(f"host=h connect_timeout={ok}")
    for bad in ("-1", "5s", "", "9223372036854775808", "1.0"):
        assert refused(f"host=h connect_timeout='{bad}'") == (
            "connect_timeout is not a whole, non-negative number of seconds"
        )
    for tsa in dsn.TARGET_SESSION_ATTRS:
        pgx_config(f"host=h target_session_attrs={tsa}")
    assert refused("host=h target_session_attrs=Primary") == (
        "target_session_attrs is not one of any, read-write, read-only, primary, standby, "
        "prefer-standby"
    )
    for key in ("min_protocol_version", "max_protocol_version"):
        for ok in ("", "3.0", "3.2", "latest"):
            pgx_config(f"host=h {key}='{ok}'")
        assert refused(f"host=h {key}=3.1") == f"{key} is not one of 3.0, 3.2, latest"
    for ok in ("", "prefer", "disable", "require"):
        pgx_config(f"host=h channel_binding='{ok}'")
    assert refused("host=h channel_binding=on") == (
        "channel_binding is not one of prefer, disable, require"
    )
    for key in ("service", "require_auth"):
        assert refused(f"host=h {key}=x") == (
            f"{key} is not supported in the datastore URI: give host, port, user and sslmode in "
            "the URI itself"
        )
        pgx_config(f"host=h {key}=''")
    assert refused("host=h\x00") == "the datastore URI holds a NUL byte"


def test_the_config_hides_its_password() -> None:
    c = pgx_config("postgres://u:Secret1@a,b,a/d?sslmode=require")
    assert c.hosts == ("a", "b")
    assert "Secret1" not in repr(c) and "Secret1" not in str(c)
    assert "password=***" in repr(c)
    assert "password=None" in repr(pgx_config("postgres://u@a/d"))
    assert repr(c).startswith("PgxConfig(attempts=(Attempt(host='a', port=5432, tls=True), ")


# -- the policy -------------------------------------------------------------------------

HELP = dsn._SHAPE_HELP


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"postgres:{M}:pw@db.internal/openfga", "the datastore URI must start with postgres://: "
         "it lacks the // after the scheme (or is not a URL at all); " + HELP),
        ("host=db.internal user=x", "the datastore URI must start with postgres://: it looks like "
         "a key=value connection string, which OpenFGA's migrate rewrites with Go's url package "
         "into a different, broken one; " + HELP),
        (f"mysql://{M}:pw@db.internal/openfga", "the datastore URI must start with postgres://: "
         "its scheme is not postgres:// or postgresql://; " + HELP),
        ("//db.internal/openfga", "the datastore URI must start with postgres://: its scheme is "
         "not postgres:// or postgresql://; " + HELP),
        (U + "a@db.internal/openfga", "the datastore URI does not have the accepted shape: it "
         "holds more than one @ (an @ in the password must be %40); " + HELP),
        (U + "db.internal/openfga#x", "the datastore URI does not have the accepted shape: it "
         "holds a # (in a password it must be %23); " + HELP),
        (f"postgres://{M}:p w@db.internal/openfga", "the datastore URI does not have the "
         "accepted shape: it holds a space (percent-encode it as %20); " + HELP),
        (f"postgres://{M}:p/w@db.internal/openfga", "the datastore URI does not have the "
         "accepted shape: the user and password hold a / or ? (percent-encode them: %2F, %3F); "
         + HELP),
        (U + "/openfga", "the datastore URI does not have the accepted shape: it names no host; "
         + HELP),
        (U + "%2Ftmp/openfga", "the datastore URI does not have the accepted shape: a host is "
         "percent-encoded; name hosts plainly (no unix sockets); " + HELP),
        (U + "db.internal/openfga?Sslmode=x", "the datastore URI does not have the accepted "
         "shape: its query is not key=value pairs joined by & with lower-case keys; " + HELP),
        (U + "db.internal/openfga?a=b=c", "the datastore URI does not have the accepted "
         "shape: its query is not key=value pairs joined by & with lower-case keys; " + HELP),
        (f"postgres://{M}:p!w@db.internal/openfga", "the datastore URI does not have the "
         "accepted shape: a user, password, host, port or database holds a character that must "
         "be encoded; " + HELP),
        (U + "[::1],db.internal/openfga", "the datastore URI lists an IPv6 address with other "
         "hosts, which Go's url.Parse (that OpenFGA's migrate reads the URI with) refuses: give "
         "one IPv6 host alone, or host names"),
        (U + "db.internal/openfga?sslmode=require&sslmode=require", "the datastore URI gives "
         "sslmode twice: pgx uses the last; give it once"),
        (U + "db.internal/openfga?ssl=true", "the datastore URI uses ssl=...: write "
         "sslmode=require (or verify-full)"),
        (U + "db.internal/openfga?options=x", "the datastore URI's query parameter options is not "
         "one this pipeline passes on (it may read files, change the server or carry secrets): "
         "use only sslmode, sslrootcert, sslcert, sslkey, connect_timeout, "
         "target_session_attrs, application_name"),
        (U + "db.internal/openfga?hunter=x", "the datastore URI's query an unknown parameter is "
         "not one this pipeline passes on (it may read files, change the server or carry "
         "secrets): use only sslmode, sslrootcert, sslcert, sslkey, connect_timeout, "
         "target_session_attrs, application_name"),
        (U + "db.internal/openfga?user=openfga_app", "the datastore URI's query sets user=, which "
         "overrides the user before the path for pgx but not for Go's url package that OpenFGA "
         "also reads it with: name the user, password, hosts and database only in their place "
         "(postgres://USER:PASSWORD@HOST:PORT/DATABASE)"),
        ("postgres://db.internal/openfga", "the datastore URI names no user, so pgx would log in "
         "as the OS user: write postgres://openfga_migrator:PASSWORD@HOST/DATABASE"),
        (U + "db.internal", "the datastore URI names no database: add /openfga (its name) after "
         "the host"),
        (U + "db.internal/", "the datastore URI names no database: add /openfga (its name) after "
         "the host"),
        (U + "db.internal/openfga?sslmode=", "the datastore URI has an empty sslmode=, which pgx "
         "reads as 'prefer' (TLS when offered, else plain text): write sslmode=require (or "
         "verify-full, or disable for a private host on purpose)"),
        (U + "db.internal/openfga?sslmode=on", "the datastore URI's sslmode is not one of "
         "disable, allow, prefer, require, verify-ca, verify-full"),
        (U + "db.internal/openfga?sslmode=on&sslrootcert=system", "sslmode is not one of "
         "disable, allow, prefer, require, verify-ca, verify-full"),
        (U + "db.internal/openfga?target_session_attrs=x", "target_session_attrs is not one of "
         "any, read-write, read-only, primary, standby, prefer-standby"),
        (U + "db.internal/openfga?connect_timeout=1234567", "connect_timeout is not a whole "
         "number of seconds (at most 6 digits)"),
        (U + "db.example.com/openfga", "the datastore URI for db.example.com names no sslmode, "
         "so pgx would use 'prefer', which can fall back to an unencrypted connection: add "
         "?sslmode=require (or verify-full) to the URI"),
        (U + "db.example.com/openfga?sslmode=allow", "sslmode=allow for db.example.com (an empty "
         "sslmode= is prefer): that host is not loopback or private, so pgx would try it "
         "without TLS and the password could cross the network unencrypted. Use "
         "sslmode=require (or verify-full with sslrootcert), or reach the database by a "
         "private name such as <name>.internal"),
    ],
)  # fmt: skip
def test_each_refusal_names_the_problem_and_the_fix(uri: str, message: str) -> None:
    with pytest.raises(DsnError) as err:
        check_datastore_uri(uri)
    assert str(err.value) == message


@pytest.mark.parametrize("key", ["host", "hostaddr", "port", "password", "dbname", "database"])
def test_every_query_key_that_overrides_the_url_is_refused(key: str) -> None:
    with pytest.raises(DsnError, match=rf"^the datastore URI's query sets {key}=, which overrides"):
        check_datastore_uri(U + f"db.internal/openfga?{key}=x")


def test_env_and_type_and_length_refusals() -> None:
    with pytest.raises(DsnError) as err:
        check_datastore_uri(U + "db.internal/openfga", {"PGSSLMODE": "disable", "PGHOST": "x",
                                                        "HOME": "/", "PGUSER": ""})  # fmt: skip
    assert str(err.value) == (
        "the environment sets PGHOST, PGSSLMODE, which pgx reads as defaults for the datastore "
        "connection: remove them from the container"
    )
    assert check_datastore_uri(U + "db.internal/openfga", {"HOME": "/", "PGUSER": ""}).user == M
    with pytest.raises(DsnError, match=r"^the datastore URI must be text$"):
        check_datastore_uri(b"postgres://u@h/d")  # type: ignore[arg-type]
    prefix = U + "db.internal/openfga?application_name="
    long = prefix + "a" * (4096 - len(prefix))
    assert len(long) == 4096
    check_datastore_uri(long)
    with pytest.raises(DsnError, match=r"^the datastore URI is 4097 characters long; the limit"):
        check_datastore_uri(long + "a")
    with pytest.raises(DsnError, match="names a unix-socket directory as a host"):
        dsn.check_tls(pgx_config("host=/tmp"))


def test_what_is_accepted_comes_back_as_pgx_reads_it() -> None:
    c = check_datastore_uri(
        f"postgresql://{M}:p%40ss@a.example.com:1,b.internal:2/open%20fga"
        "?sslmode=verify-full&sslrootcert=%2Fca.pem&connect_timeout=5&target_session_attrs=any"
        "&application_name=x&sslcert=/c&sslkey=/k"
    )
    assert c.attempts == (Attempt("a.example.com", 1, True), Attempt("b.internal", 2, True))
    assert (c.user, c.password, c.database, c.sslmode) == (M, "p@ss", "open fga", "verify-full")
    d = check_uri_as_given(f"postgres://{M}:p%40ss@b.internal:2,a.example.com/d?sslmode=require")
    assert (d.host, d.port, d.user, d.password, d.sslmode) == (
        "b.internal",
        2,
        M,
        "p@ss",
        "require",
    )
    d = check_uri_as_given(
        f"postgres://{M}@b.internal/d?connect_timeout=7&sslrootcert=%2Fmy%20ca.pem"
    )
    assert (d.sslmode, d.connect_timeout, dict(d.params)) == (
        "prefer",
        7,
        {"sslrootcert": "/my ca.pem"},
    )
    assert check_uri_as_given(f"postgres://{M}@b.internal/d").connect_timeout is None
    assert check_uri_as_given(f"postgres://{M}@b.internal/d?sslmode=disable").sslmode == "disable"
    assert check_datastore_uri(f"postgres://{M}@h/d?sslmode=prefer").given[-1] == "sslmode"


def test_dsn_parse_takes_one_host() -> None:
    with pytest.raises(DsnError) as err:
        Dsn.parse(U + "a.internal,b.internal/d")
    assert str(err.value) == "a Dsn holds one host: use check_uri_as_given for a host list"
    with pytest.raises(DsnError, match=r"^connect_timeout is not a whole number of seconds"):
        Dsn.parse(U + "a.internal/d?connect_timeout=1234567")
    with pytest.raises(DsnError, match=r"^the datastore URI's query sets host="):
        Dsn.parse(U + "a.internal/d?host=b")
    d = Dsn.parse(U + "a.example.com:7/d?connect_timeout=3")
    assert (d.host, d.port, d.sslmode, d.connect_timeout) == ("a.example.com", 7, "require", 3)


# -- the builder (the --host path) ------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["evil.example.com,db.internal", "db.internal,evil.example.com", "db.internal:5432",
     "/tmp", "db internal", "db.internal/x", "-db.internal", "db..internal", "a" * 64,
     "db.internal\n", "[::1]x", "db_internal", "db.internal%2C", "user@db.internal", ".",
     "::1,::2", "fe80::1%eth0"],
)  # fmt: skip
def test_the_builder_takes_exactly_one_host(host: str) -> None:
    with pytest.raises(DsnError) as err:
        Dsn(host=host, database="openfga", user=M)
    assert str(err.value) in (
        f"datastore host {host!r} is not one host name or IP address (no lists, ports, paths "
        "or spaces): give one host, e.g. postgres.internal",
        "datastore host is empty or has surrounding spaces",
    )


@pytest.mark.parametrize(
    "host", ["db.internal", "db.internal.", "10.0.0.1", "::1", "[::1]", "postgres", "a-b.c",
             "a" * 63],
)  # fmt: skip
def test_the_builder_takes_host_names_and_addresses(host: str) -> None:
    d = Dsn(host=host, database="openfga", user=M)
    assert check_datastore_uri(d.public_uri()).hosts == (host.strip("[]"),)


def test_builder_fields() -> None:
    for name in ("database", "user"):
        for bad in ("", " x", "x ", "\x00"):
            with pytest.raises(DsnError) as err:
                Dsn(**{"host": "h", "database": "d", "user": "u", name: bad})
            assert str(err.value) in (
                f"datastore {name} is empty or has surrounding spaces",
                f"datastore {name} holds a NUL byte",
            )
    for port in (0, 65536, -1, True, "5432"):
        with pytest.raises(DsnError) as err:
            Dsn(host="h", database="d", user="u", port=port)  # type: ignore[arg-type]
        assert str(err.value) == "datastore port is not a number between 1 and 65535"
    assert Dsn(host="h", database="d", user="u", port=65535).port == 65535
    assert Dsn(host="h", database="d", user="u", port=1).port == 1
    for params in ({"sslmode": "x"}, {"password": "x"}, {"options": "x"}, {"host": "x"}):
        with pytest.raises(DsnError) as err:
            Dsn(host="h", database="d", user="u", params=params)
        assert str(err.value) == (
            "give sslmode and password as their own fields; params may hold only sslrootcert, "
            "sslcert, sslkey, connect_timeout, target_session_attrs, application_name"
        )
    assert Dsn(host="h", database="d", user="u", params={"sslrootcert": "/c"}).params == {
        "sslrootcert": "/c"
    }


def test_password_bounds() -> None:
    assert check_password(None, "x") is None
    assert check_password("x" * 1024, "x") == "x" * 1024
    with pytest.raises(DsnError) as err:
        check_password("x" * 1025, "--password")
    assert str(err.value) == (
        "the password in --password is 1025 bytes long; the limit is 1024 bytes (a longer "
        "value is usually the wrong file or variable): give the role's password itself"
    )
    with pytest.raises(DsnError) as err:
        check_password("a\x00b", "--password")
    assert str(err.value) == "the password in --password holds a NUL byte, which no driver can send"
    assert check_password("\ud800", "x") == "\ud800"  # lone surrogates are counted, not crashing
    with pytest.raises(DsnError, match=r"^the password in the datastore password is 1026 bytes"):
        Dsn(host="h", database="d", user="u", password="é" * 513)


def test_private_names() -> None:
    assert dsn.is_loopback("LOCALHOST") and dsn.is_loopback("localhost.localdomain")
    assert dsn.is_loopback("127.0.0.2") and dsn.is_loopback("::1")
    assert not dsn.is_loopback("10.0.0.1") and not dsn.is_loopback("localhost.example.com")
    assert dsn.is_private("100.64.0.1") and dsn.is_private("100.127.255.255")
    assert not dsn.is_private("100.128.0.1") and not dsn.is_private("100.63.255.255")
    assert dsn.is_private("169.254.0.1") and dsn.is_private("[fd00::1]")
    assert dsn.is_private("DB.INTERNAL.") and dsn.is_private("x.localdomain")
    assert dsn.is_private("internal")
    assert not dsn.is_private("evil.com") and not dsn.is_private("x.internal.evil.com")
    assert dsn.default_sslmode("x.svc") == "prefer"
    assert dsn.default_sslmode("x.example.com") == "require"


# -- details the mutation run asked for (scripts/mutation) -----------------------------


def test_hex_digits_are_exactly_0_9_a_f() -> None:
    assert pgx_config("postgres://u:%6f%6F%4a%39%30@h/d").password == "ooJ90"
    for bad in ("%3:", "%6g", "%6G", "%/0", "%@0", "%`0"):
        assert refused(f"postgres://u:{bad}@h/d") == (
            "a % in the datastore URI does not start a %XX escape"
        )


def test_spaces_around_a_component_are_trimmed_one_by_one() -> None:
    assert pgx_config("postgres://u: ab@h/d").password == "ab"
    assert pgx_config("postgres://u:   ab   @h/d").password == "ab"
    assert pgx_config("postgres://u:ab @h/d").password == "ab"


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("postgres://u:p@a@h/d?x=y://z",
         "it holds more than one @ (an @ in the password must be %40)"),
        ("postgres://u:p%zz@h/d", "a user, password, host, port or database holds a character "
         "that must be encoded"),
        ("postgres://u:p!w@h/d?a=b", "a user, password, host, port or database holds a character "
         "that must be encoded"),
        ("postgres://u:p@h/d?A=b?c=d", "its query is not key=value pairs joined by & with "
         "lower-case keys"),
        ("postgres://u:p@h/d?a=b?c", "a user, password, host, port or database holds a "
         "character that must be encoded"),
        ("postgres://u:p@h%41/d",
         "a host is percent-encoded; name hosts plainly (no unix sockets)"),
    ],
)  # fmt: skip
def test_diagnosis_names_the_first_broken_part(uri: str, why: str) -> None:
    with pytest.raises(DsnError) as err:
        check_datastore_uri(uri)
    assert str(err.value) == (
        f"the datastore URI does not have the accepted shape: {why}; {dsn._SHAPE_HELP}"
    )


@pytest.mark.parametrize(
    ("key", "what"),
    [("host", "the host"), ("hostaddr", "the host"), ("port", "the port"), ("user", "the user"),
     ("password", "the password"), ("database", "the database"), ("dbname", "the database")],
)  # fmt: skip
def test_override_refusals_name_what_is_overridden(key: str, what: str) -> None:
    with pytest.raises(DsnError) as err:
        check_datastore_uri(U + f"db.internal/openfga?{key}=x")
    assert str(err.value) == (
        f"the datastore URI's query sets {key}=, which overrides {what} before the path for pgx "
        "but not for Go's url package that OpenFGA also reads it with: name the user, password, "
        "hosts and database only in their place (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
    )


def test_exact_tls_messages() -> None:
    with pytest.raises(DsnError) as err:
        dsn.check_tls(pgx_config("host=/tmp"))
    assert str(err.value) == (
        "the datastore URI names a unix-socket directory as a host, which cannot reach a "
        "database from the OpenFGA container: give a host name"
    )
    with pytest.raises(DsnError) as err:
        dsn.check_sslmode("db.example.com", "prefer")
    assert str(err.value) == (
        "sslmode=prefer for db.example.com: that host is not loopback or private, so the "
        "password would cross the network unencrypted. Use sslmode=require (or verify-full with "
        "sslrootcert), or reach the database by a private name such as <name>.internal"
    )
    with pytest.raises(DsnError) as err:
        dsn.check_sslmode("db.internal", "on")
    assert str(err.value) == (
        "sslmode is not one of disable, allow, prefer, require, verify-ca, verify-full"
    )
    assert not dsn.is_private("X10.0.0.1") and not dsn.is_private("[10.0.0.1]x.example.com")


def test_as_given_passes_the_environment_on_and_keeps_blank_values() -> None:
    with pytest.raises(DsnError, match=r"^the environment sets PGHOST"):
        check_uri_as_given(U + "db.internal/openfga", {"PGHOST": "x"})
    assert check_uri_as_given(U + "h.internal/d?application_name=").params == {
        "application_name": ""
    }
    assert Dsn.parse(U + "h.internal/d?application_name=").params == {"application_name": ""}


def test_builder_encodes_and_copies() -> None:
    params = {"sslrootcert": "/a"}
    d = Dsn(host="h", database="d/b", user="u/s", password="p/w", params=params)
    params["sslrootcert"] = "/b"
    assert d.params == {"sslrootcert": "/a"}
    assert d.secret_uri().startswith("postgres://u%2Fs:p%2Fw@h:5432/d%2Fb?")
    bare = Dsn(host="h", database="d", user="u")
    assert bare.secret_uri() == bare.public_uri() == str(bare)
    assert "***" not in str(bare)


def test_redaction_forms_and_order() -> None:
    from openfga_release.recipes.dsn import redact

    secret = 'ab"cd\\ef/g h'
    go = 'ab\\"cd\\\\ef/g h'
    forms = [secret, go, go.replace("\\", "\\\\"), "ab%22cd%5Cef%2Fg%20h", "ab%22cd%5Cef/g%20h",
             "ab%22cd%5Cef%2Fg+h"]  # fmt: skip
    for form in forms:
        assert redact(f"<{form}>", [secret]) == "<***>", form
    assert redact("xabcdx", ["abcd"]) == "x***x"
    assert redact("xabcx a-abc", ["abc"]) == "xabcx a-***"
    assert redact("[abcdefgh]", ["abcd", "abcdefgh"]) == "[***]"
    assert redact("[abcdefgh]", ["abcdefgh", "abcd"]) == "[***]"
    assert redact("x cannot parse `postgres://u:p@h:5x/d`: invalid port") == (
        "x cannot parse `<datastore URI, redacted>`: invalid port"
    )
    assert redact("cannot parse `host=h password=pw`") == (
        "cannot parse `<datastore URI, redacted>`: "
    )
    assert redact("conn: host=h password='a b' user=u") == "conn: host=h password=*** user=u"
    assert redact("conn: password=ab\\ cd") == "conn: password=***\\ cd"


def test_authority_edges() -> None:
    assert attempts("postgres://@h/d?sslmode=disable") == [("h", 5432, False)]
    assert pgx_config("postgres://@h/d").user == ""
    assert attempts("postgres://u@h:6543") == [("h", 6543, True), ("h", 6543, False)]
    assert pgx_config("postgres://u@h:6543").database == ""
    assert refused("postgres://u@h:5X/d") == (
        "a port of the datastore URI is not a number from 1 to 65535"
    )
    assert attempts("postgres://u@hXy/d?sslmode=disable") == [("hXy", 5432, False)]
    assert attempts("postgres://u@[::1]") == [("::1", 5432, True), ("::1", 5432, False)]
    # An empty password in the URI leaves the environment's in force, as in pgx.
    assert pgx_config("postgres://u:@h/d", {"PGPASSWORD": "ep"}).password == "ep"
    assert pgx_config("postgres://u:x@h/d", {"PGPASSWORD": "ep"}).password == "x"
    # Bytes that are not UTF-8 pass through as pgx passes them (no decoding).
    assert pgx_config("postgres://u:\udcff@h/d").password == "\udcff"
    assert pgx_config("postgres://u:%FF@h/d").password == "\udcff"


def test_longer_forms_of_a_secret_are_redacted_before_the_forms_inside_them() -> None:
    from openfga_release.recipes.dsn import redact

    # The Go-escaped form of a secret ending or starting with a backslash holds the raw
    # secret: replaced first, the raw form would leave a backslash of the secret behind.
    assert redact("<Zq8W\\\\>", ["Zq8W\\"]) == "<***>"
    assert redact("<\\\\zq8W>", ["\\zq8W"]) == "<***>"


def test_dsn_parse_sees_blank_values_too() -> None:
    with pytest.raises(DsnError, match=r"^the datastore URI gives sslmode twice"):
        Dsn.parse(U + "h.internal/d?sslmode=require&sslmode=")
