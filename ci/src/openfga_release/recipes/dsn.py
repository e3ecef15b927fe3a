"""OpenFGA datastore URIs for PostgreSQL: one builder, one reader, one set of rules.

Plain module (no dagger import). Three layers:

- :func:`pgx_config` reads a connection string exactly as pgx v5.11.0 (the
  driver OpenFGA v1.22.1 links) does in ``pgconn.ParseConfig``: URL and
  keyword/value forms, comma host lists with per-host ports, IPv6 brackets,
  query parameters overriding the URL's parts (``?host=``, ``?user=``...),
  ``ssl=true``, an empty ``sslmode=`` (= ``prefer``), the ``PG*`` environment
  defaults, unix-socket hosts and the plain-text fallbacks of ``prefer`` and
  ``allow``. It returns every connection *attempt* pgx would make, in order.
  ``tests/real/test_pgx_probe.py`` holds it to the real pgx on a corpus.
- :func:`check_uri_as_given` is the policy for a URI OpenFGA receives
  unchanged: an allow-listed shape (:data:`URI_SHAPE`, which Go's ``url.Parse``
  and pgx split the same way), allow-listed query keys, a named migrator
  user, and the TLS rule for *every* attempt.
- :class:`Dsn` builds a one-host URI with every part percent-encoded.

TLS rule: a host that is not loopback or private (an RFC 1918/ULA address, a
single-label name, or a name under ``.internal``, ``.local``, ``.svc``...) is
reached over the network, so every attempt to it must use TLS (``sslmode``
``require`` or stricter: no ``prefer``/``allow`` fallback to plain text).

No error message holds the password or any part of it: messages quote only
parts already proven to be outside the password (hosts and keys of a URI that
matched :data:`URI_SHAPE`), never raw input.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, quote, unquote, urlencode

from .errors import InputError

DEFAULT_PORT = 5432
# Weakest to strictest, as libpq and pgx define them.
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
PUBLIC_MINIMUM = "require"
# Name suffixes that only resolve inside a private network: KraftCloud/Unikraft
# (.internal), Kubernetes services (.svc, .svc.cluster.local), mDNS (.local).
PRIVATE_SUFFIXES = (".internal", ".local", ".svc", ".cluster.local", ".localdomain")
REDACTED = "***"
_SCHEMES = ("postgres", "postgresql")
# A password longer than this is a mistake (a key file, a whole env dump), not
# a password: far below what PostgreSQL reads in a password packet
# (PG_MAX_AUTH_TOKEN_LENGTH, 65535) and what Linux passes in one environment
# variable (MAX_ARG_STRLEN, 131072), so it fails here, by name, not late.
MAX_PASSWORD_BYTES = 1024
MAX_URI_CHARS = 4096
# Every environment variable pgx v5.11.0 reads in ParseConfig (parseEnvSettings).
# Containers that run OpenFGA remove them all (or the URI could be redirected).
PGX_ENV = {
    "PGHOST": "host", "PGPORT": "port", "PGDATABASE": "database", "PGUSER": "user",
    "PGPASSWORD": "password", "PGPASSFILE": "passfile", "PGAPPNAME": "application_name",
    "PGCONNECT_TIMEOUT": "connect_timeout", "PGSSLMODE": "sslmode", "PGSSLKEY": "sslkey",
    "PGSSLCERT": "sslcert", "PGSSLSNI": "sslsni", "PGSSLROOTCERT": "sslrootcert",
    "PGSSLPASSWORD": "sslpassword", "PGSSLNEGOTIATION": "sslnegotiation",
    "PGTARGETSESSIONATTRS": "target_session_attrs", "PGSERVICE": "service",
    "PGSERVICEFILE": "servicefile", "PGTZ": "timezone", "PGOPTIONS": "options",
    "PGMINPROTOCOLVERSION": "min_protocol_version",
    "PGMAXPROTOCOLVERSION": "max_protocol_version", "PGCHANNELBINDING": "channel_binding",
    "PGREQUIREAUTH": "require_auth",
}  # fmt: skip
# Query keys a URI given as-is may carry; anything else is refused (allow-list).
ALLOWED_QUERY_KEYS = (
    "sslmode", "sslrootcert", "sslcert", "sslkey",
    "connect_timeout", "target_session_attrs", "application_name",
)  # fmt: skip
TARGET_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
# pgx's defaultHost(): the first existing socket directory, else localhost.
_SOCKET_DIRS = ("/var/run/postgresql", "/private/tmp", "/tmp")

# The one URI shape accepted as given. Every user, password, database and query
# character other than unreserved ones is percent-encoded (what Dsn writes), so
# Go's url.Parse, OpenFGA's rewrite of it, and pgx all split it the same way.
_U = r"(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})"
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME = re.compile(rf"{_NAME}(?:\.{_NAME})*\.?")
_HOST = rf"(?:{_NAME}(?:\.{_NAME})*\.?|\[[0-9A-Fa-f:.]+\])"
_HOSTPORT = rf"{_HOST}(?::[0-9]{{1,5}})?"
URI_SHAPE = re.compile(
    rf"(?P<scheme>postgres|postgresql)://"
    rf"(?:(?P<user>{_U}+)(?::(?P<password>{_U}*))?@)?"
    rf"(?P<hosts>{_HOSTPORT}(?:,{_HOSTPORT})*)"
    rf"(?:/(?P<database>{_U}*))?"
    rf"(?:\?(?P<query>[a-z_]+=(?:{_U}|/)*(?:&[a-z_]+=(?:{_U}|/)*)*))?"
)
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._/-]{1,64}")
_SHAPE_HELP = (
    "the accepted shape is postgres://USER:PASSWORD@HOST[:PORT][,HOST[:PORT]...]/DATABASE"
    "?sslmode=require with every character of USER, PASSWORD and DATABASE other than "
    "letters, digits and - . _ ~ percent-encoded (@ is %40, : is %3A, / is %2F, # is %23, "
    "% is %25); build it with openfga_release.recipes.dsn.Dsn"
)


class DsnError(InputError):
    """A datastore URI that cannot work, with the fix. Never contains the password."""


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    ip = _ip(host)
    return ip is not None and ip.is_loopback


def is_private(host: str) -> bool:
    """Loopback, a private address, or a name that only resolves on a private network."""
    if is_loopback(host):
        return True
    ip = _ip(host)
    if ip is not None:
        # is_private also covers link-local; CGNAT (100.64/10) is not "private" to it.
        return ip.is_private or ip in ipaddress.ip_network("100.64.0.0/10")
    name = host.lower().rstrip(".")
    return "." not in name or name.endswith(PRIVATE_SUFFIXES)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def default_sslmode(host: str) -> str:
    """``require`` for public hosts; ``prefer`` (TLS when offered) on private networks."""
    return "prefer" if is_private(host) else PUBLIC_MINIMUM


def check_sslmode(host: str, sslmode: str) -> str:
    if sslmode not in SSLMODES:
        raise DsnError(f"sslmode is not one of {', '.join(SSLMODES)}")
    if not is_private(host) and SSLMODES.index(sslmode) < SSLMODES.index(PUBLIC_MINIMUM):
        raise DsnError(
            f"sslmode={sslmode} for {host}: that host is not loopback or private, so the "
            "password would cross the network unencrypted. Use sslmode=require (or "
            "verify-full with sslrootcert), or reach the database by a private name "
            "such as <name>.internal"
        )
    return sslmode


def check_password(password: str | None, where: str) -> str | None:
    """A password pgx can send: no NUL byte, at most :data:`MAX_PASSWORD_BYTES` bytes.

    ``where`` names its source for the message (e.g. ``"--password"``,
    ``"the --datastore-uri secret"``); the message gives lengths, never text.
    """
    if password is None:
        return None
    if "\x00" in password:
        raise DsnError(f"the password in {where} holds a NUL byte, which no driver can send")
    size = len(password.encode("utf-8", "surrogatepass"))
    if size > MAX_PASSWORD_BYTES:
        raise DsnError(
            f"the password in {where} is {size} bytes long; the limit is {MAX_PASSWORD_BYTES} "
            "bytes (a longer value is usually the wrong file or variable): give the role's "
            "password itself"
        )
    return password


# -- what pgx does --------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One connection attempt pgx makes (its main config or one fallback), in order."""

    host: str
    port: int
    tls: bool

    @property
    def unix(self) -> bool:
        """A unix-socket directory (pgx: an absolute path), never TLS."""
        return _is_absolute_path(self.host)


@dataclass(frozen=True, repr=False)
class PgxConfig:
    """What ``pgconn.ParseConfig`` decided; ``user`` is ``""`` when pgx would use the OS user."""

    attempts: tuple[Attempt, ...]
    user: str
    database: str
    sslmode: str  # as configTLS applies it (after its defaults and overrides)
    form: str  # "url" or "keyword"
    given: tuple[str, ...]  # the keys the connection string set, in order
    password: str | None = field(default=None, compare=False)

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.host for a in self.attempts))

    def __repr__(self) -> str:
        pw = "None" if self.password is None else REDACTED
        return (
            f"PgxConfig(attempts={self.attempts!r}, user={self.user!r}, "
            f"database={self.database!r}, sslmode={self.sslmode!r}, password={pw})"
        )

    __str__ = __repr__


class _Unparsable(DsnError):
    """pgx itself refuses the connection string."""


def _is_absolute_path(host: str) -> bool:
    return host.startswith("/") or bool(re.fullmatch(r"[A-Z]:\\.*", host, re.DOTALL))


def _hex(c: int) -> int | None:
    if 0x30 <= c <= 0x39:
        return c - 0x30
    if 0x41 <= c <= 0x46 or 0x61 <= c <= 0x66:
        return (c | 0x20) - 0x61 + 10
    return None


def _uri_decode(raw: bytes) -> bytes:
    """libpq's conninfo_uri_decode as pgx's uriDecode: trims spaces, no %00, no inner space."""
    out = bytearray()
    i, n = 0, len(raw)
    while i < n and raw[i] == 0x20:
        i += 1
    while i < n and raw[i] != 0x20:
        if raw[i] != 0x25:
            out.append(raw[i])
            i += 1
            continue
        hi = _hex(raw[i + 1]) if i + 1 < n else None
        lo = _hex(raw[i + 2]) if i + 2 < n else None
        if hi is None or lo is None:
            raise _Unparsable("a % in the datastore URI does not start a %XX escape")
        if hi == 0 and lo == 0:
            raise _Unparsable("the datastore URI holds %00, which pgx forbids")
        out.append(hi << 4 | lo)
        i += 3
    while i < n and raw[i] == 0x20:
        i += 1
    if i < n:
        raise _Unparsable("the datastore URI holds a space: percent-encode it as %20")
    return bytes(out)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _first_of(p: bytes, chars: bytes) -> int:
    found = [i for i in (p.find(bytes([c])) for c in chars) if i >= 0]
    return min(found) if found else -1


def _url_settings(uri: str) -> dict[str, str]:
    """pgx's parseURLSettings (libpq's URI parser)."""
    settings: dict[str, str] = {}
    data = uri.encode("utf-8", "surrogateescape")
    p = (
        data.removeprefix(b"postgresql://")
        if data.startswith(b"postgresql://")
        else (data.removeprefix(b"postgres://"))
    )
    i = _first_of(p, b"@/")
    if i >= 0 and p[i : i + 1] == b"@":
        user, colon, password = p[:i].partition(b":")
        p = p[i + 1 :]
        if user:
            settings["user"] = _text(_uri_decode(user))
        if colon and password:
            settings["password"] = _text(_uri_decode(password))
    hosts, ports = bytearray(), bytearray()
    while True:
        if p.startswith(b"["):
            end = p.find(b"]")
            if end < 0:
                raise _Unparsable("an IPv6 address in the datastore URI has no closing ]")
            if end == 1:
                raise _Unparsable("an IPv6 address in the datastore URI is empty ([])")
            hosts += p[1:end]
            p = p[end + 1 :]
            if p[:1] not in (b"", b":", b"/", b"?", b","):
                raise _Unparsable("an IPv6 address in the datastore URI is not followed by : or /")
        else:
            i = _first_of(p, b":/?,")
            i = len(p) if i < 0 else i
            hosts += p[:i]
            p = p[i:]
        if p.startswith(b":"):
            p = p[1:]
            i = _first_of(p, b"/?,")
            i = len(p) if i < 0 else i
            ports += p[:i]
            p = p[i:]
        if not p.startswith(b","):
            break
        p = p[1:]
        hosts += b","
        ports += b","
    if hosts:
        settings["host"] = _text(_uri_decode(bytes(hosts)))
    if ports:
        settings["port"] = _text(_uri_decode(bytes(ports)))
    if p.startswith(b"/"):
        database, sep, query = p[1:].partition(b"?")
        p = sep + query
        if database:
            settings["database"] = _text(_uri_decode(database))
    if p.startswith(b"?"):
        settings.update(_query_settings(p[1:]))
    return settings


def _query_settings(params: bytes) -> dict[str, str]:
    """pgx's parseURLQueryParams: last occurrence wins; ssl=true means sslmode=require."""
    settings: dict[str, str] = {}
    ssl_was_last = False
    while params:
        pair, _, params = params.partition(b"&")
        raw_key, eq, raw_value = pair.partition(b"=")
        if not eq:
            raise _Unparsable("a query parameter of the datastore URI has no =")
        if b"=" in raw_value:
            raise _Unparsable("a query parameter of the datastore URI has a second =")
        key = _text(_uri_decode(raw_key))
        key = "database" if key == "dbname" else key
        value = _text(_uri_decode(raw_value))
        if key == "ssl":
            ssl_was_last = True
        elif key == "sslmode":
            ssl_was_last = False
        settings[key] = value
    if settings.get("ssl") == "true":
        del settings["ssl"]
        if ssl_was_last:
            settings["sslmode"] = "require"
    return settings


_SPACE = " \t\n\r\v\f"


def _unescape(value: str) -> str:
    return re.sub(r"\\(.?)", r"\1", value, flags=re.DOTALL)


def _keyword_settings(text: str) -> dict[str, str]:
    """pgx's parseKeywordValueSettings (libpq's conninfo_parse)."""
    settings: dict[str, str] = {}
    s = text.lstrip(_SPACE)
    while s:
        eq = s.find("=")
        if eq < 0:
            raise _Unparsable("the datastore connection string is not key=value pairs")
        key = s[:eq].strip(_SPACE)
        if any(c in _SPACE for c in key):
            raise _Unparsable("a key of the datastore connection string holds a space")
        s = s[eq + 1 :].lstrip(_SPACE)
        value = ""
        if s and s[0] != "'":
            end = 0
            while end < len(s) and s[end] not in _SPACE:
                if s[end] == "\\":
                    end += 1
                    if end == len(s):
                        break
                end += 1
            value = _unescape(s[:end])
            s = s[end:].lstrip(_SPACE)
        elif s:
            s = s[1:]
            end = 0
            while end < len(s) and s[end] != "'":
                if s[end] == "\\":
                    end += 1
                    if end == len(s):
                        break
                end += 1
            if end >= len(s):
                raise _Unparsable("a quoted value in the datastore connection string is not closed")
            value = _unescape(s[:end])
            s = s[end + 1 :].lstrip(_SPACE)
        key = "database" if key == "dbname" else key
        if not key:
            raise _Unparsable("the datastore connection string has a value without a key")
        if key == "user" and value == "":
            continue
        settings[key] = value
    return settings


def _default_host() -> str:
    return next((d for d in _SOCKET_DIRS if os.path.exists(d)), "localhost")


def _port(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or not 0 < int(text) < 65536:
        raise _Unparsable("a port of the datastore URI is not a number from 1 to 65535")
    return int(text)


def _tls_attempts(settings: Mapping[str, str]) -> tuple[str, tuple[bool, ...]]:
    """pgx's configTLS for one TCP host: the sslmode applied and TLS on/off per attempt."""
    sslmode = settings.get("sslmode") or "prefer"
    if settings.get("sslnegotiation") == "direct" and sslmode == "prefer":
        sslmode = "require"
    if settings.get("sslrootcert") == "system":
        sslmode = "verify-full"
    if sslmode == "disable":
        return sslmode, (False,)
    if sslmode not in SSLMODES:
        raise _Unparsable("the datastore URI's sslmode is not one of " + ", ".join(SSLMODES))
    if bool(settings.get("sslcert")) != bool(settings.get("sslkey")):
        raise _Unparsable("sslcert and sslkey go together: give both or neither")
    if sslmode == "allow":
        return sslmode, (False, True)
    if sslmode == "prefer":
        return sslmode, (True, False)
    return sslmode, (True,)


def pgx_config(text: str, env: Mapping[str, str] | None = None) -> PgxConfig:
    """Read ``text`` as pgx v5.11.0's ``pgconn.ParseConfig`` does, with ``env`` as its environment.

    ``env`` defaults to empty: the containers that run OpenFGA remove every
    :data:`PGX_ENV` variable. Not modelled (refused instead): ``service`` and
    ``servicefile`` (settings read from a file) and ``require_auth``. Files
    named by ``sslrootcert``/``sslcert``/``sslkey`` are not read here.
    """
    if "\x00" in text:
        raise _Unparsable("the datastore URI holds a NUL byte")
    form = "url" if text.startswith(("postgres://", "postgresql://")) else "keyword"
    given = {}
    if text:
        given = _url_settings(text) if form == "url" else _keyword_settings(text)
    env_settings = {PGX_ENV[k]: v for k, v in (env or {}).items() if k in PGX_ENV and v}
    settings = {"host": _default_host(), "port": str(DEFAULT_PORT), "target_session_attrs": "any"}
    settings |= env_settings | given
    for unsupported in ("service", "require_auth"):
        if settings.get(unsupported):
            raise DsnError(
                f"{unsupported} is not supported in the datastore URI: give host, port, "
                "user and sslmode in the URI itself"
            )
    timeout = settings.get("connect_timeout")
    if timeout is not None and not (
        re.fullmatch(r"[+-]?[0-9]+", timeout) and 0 <= int(timeout) < 2**63
    ):
        raise _Unparsable("connect_timeout is not a whole, non-negative number of seconds")
    hosts = settings["host"].split(",")
    ports = settings["port"].split(",")
    if len(ports) > 1 and len(ports) != len(hosts):
        raise _Unparsable(
            f"the datastore URI gives {len(ports)} ports for {len(hosts)} hosts: give one "
            "port for all, or one per host"
        )
    attempts: list[Attempt] = []
    sslmode = settings.get("sslmode") or "prefer"
    for i, given_host in enumerate(hosts):
        host = given_host or _default_host()
        port = _port((ports[i] if len(ports) > 1 else ports[0]) or str(DEFAULT_PORT))
        if _is_absolute_path(host):
            attempts.append(Attempt(host, port, tls=False))
            continue
        sslmode, tls = _tls_attempts(settings)
        attempts += [Attempt(host, port, on) for on in tls]
    if settings["target_session_attrs"] not in TARGET_SESSION_ATTRS:
        raise _Unparsable("target_session_attrs is not one of " + ", ".join(TARGET_SESSION_ATTRS))
    for key in ("min_protocol_version", "max_protocol_version"):
        if settings.get(key, "") not in ("", "3.0", "3.2", "latest"):
            raise _Unparsable(f"{key} is not one of 3.0, 3.2, latest")
    if settings.get("channel_binding", "") not in ("", "prefer", "disable", "require"):
        raise _Unparsable("channel_binding is not one of prefer, disable, require")
    return PgxConfig(
        attempts=tuple(attempts),
        user=settings.get("user", ""),
        database=settings.get("database", ""),
        sslmode=sslmode,
        form=form,
        given=tuple(given),
        password=settings.get("password") or None,
    )


# -- the policy for a URI given as is -------------------------------------------


def _check_shape(uri: str) -> re.Match[str]:
    if len(uri) > MAX_URI_CHARS:
        raise DsnError(
            f"the datastore URI is {len(uri)} characters long; the limit is {MAX_URI_CHARS}"
        )
    if not uri.startswith(("postgres://", "postgresql://")):
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", uri) and "://" not in uri.partition("@")[0]:
            detail = "it lacks the // after the scheme (or is not a URL at all)"
        elif "=" in uri and "://" not in uri:
            detail = (
                "it looks like a key=value connection string, which OpenFGA's migrate "
                "rewrites with Go's url package into a different, broken one"
            )
        else:
            detail = "its scheme is not postgres:// or postgresql://"
        raise DsnError(f"the datastore URI must start with postgres://: {detail}; {_SHAPE_HELP}")
    shape = URI_SHAPE.fullmatch(uri)
    if shape is not None and "[" in shape["hosts"] and "," in shape["hosts"]:
        raise DsnError(
            "the datastore URI lists an IPv6 address with other hosts, which Go's url.Parse "
            "(that OpenFGA's migrate reads the URI with) refuses: give one IPv6 host alone, or "
            "host names"
        )
    if shape is None:
        raise DsnError(
            f"the datastore URI does not have the accepted shape: {_diagnose(uri)}; {_SHAPE_HELP}"
        )
    return shape


def _diagnose(uri: str) -> str:
    """Which part is malformed, from the structure only (never quoting the input)."""
    rest = uri.partition("://")[2]
    authority = re.split(r"[/?]", rest, maxsplit=1)[0]
    if rest.count("@") > 1:
        return "it holds more than one @ (an @ in the password must be %40)"
    if "#" in uri:
        return "it holds a # (in a password it must be %23)"
    if " " in uri:
        return "it holds a space (percent-encode it as %20)"
    if "@" in rest and "@" not in authority:
        return "the user and password hold a / or ? (percent-encode them: %2F, %3F)"
    if not authority.rpartition("@")[2]:
        return "it names no host"
    if "%" in authority.rpartition("@")[2]:
        return "a host is percent-encoded; name hosts plainly (no unix sockets)"
    if "?" in rest and not re.fullmatch(
        r"[a-z_]+=[^=&]*(?:&[a-z_]+=[^=&]*)*", rest.partition("?")[2]
    ):
        return "its query is not key=value pairs joined by & with lower-case keys"
    return "a user, password, host, port or database holds a character that must be encoded"


_KNOWN_KEYS = frozenset(PGX_ENV.values()) | {
    "dbname", "hostaddr", "ssl", "sslsni", "krbsrvname", "krbspn", "search_path",
    "statement_cache_capacity", "description_cache_capacity", "default_query_exec_mode",
    "pool_max_conns", "pool_min_conns", "pool_max_conn_lifetime", "pool_max_conn_idle_time",
}  # fmt: skip


def _refuse_keys(keys: list[str]) -> None:
    overrides = {"host": "the host", "hostaddr": "the host", "port": "the port",
                 "user": "the user", "password": "the password", "database": "the database",
                 "dbname": "the database"}  # fmt: skip
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise DsnError(f"the datastore URI gives {key} twice: pgx uses the last; give it once")
        seen.add(key)
        if key in overrides:
            raise DsnError(
                f"the datastore URI's query sets {key}=, which overrides {overrides[key]} before "
                f"the path for pgx but not for Go's url package that OpenFGA also reads it with: "
                "name the user, password, hosts and database only in their place "
                "(postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
            )
        if key == "ssl":
            raise DsnError("the datastore URI uses ssl=...: write sslmode=require (or verify-full)")
        if key not in ALLOWED_QUERY_KEYS:
            # Only a key pgx knows is quoted: an unknown one could be anything, a password too.
            named = f"parameter {key}" if key in _KNOWN_KEYS else "an unknown parameter"
            raise DsnError(
                f"the datastore URI's query {named} is not one this pipeline passes on "
                f"(it may read files, change the server or carry secrets): use only "
                f"{', '.join(ALLOWED_QUERY_KEYS)}"
            )


def check_tls(config: PgxConfig) -> None:
    """Every attempt to a host that is not private uses TLS, and none falls back to plain text."""
    for attempt in config.attempts:
        if attempt.unix:
            raise DsnError(
                "the datastore URI names a unix-socket directory as a host, which cannot "
                "reach a database from the OpenFGA container: give a host name"
            )
        if attempt.tls or is_private(attempt.host):
            continue
        if "sslmode" not in config.given:
            raise DsnError(
                f"the datastore URI for {attempt.host} names no sslmode, so pgx would use "
                "'prefer', which can fall back to an unencrypted connection: add "
                "?sslmode=require (or verify-full) to the URI"
            )
        raise DsnError(
            f"sslmode={config.sslmode} for {attempt.host} (an empty sslmode= is "
            "prefer): that host is not loopback or private, so pgx would try it without TLS "
            "and the password could cross the network unencrypted. Use sslmode=require (or "
            "verify-full with sslrootcert), or reach the database by a private name such as "
            "<name>.internal"
        )


def check_datastore_uri(uri: str, env: Mapping[str, str] | None = None) -> PgxConfig:
    """Check a URI that OpenFGA receives unchanged (a secret this project never rewrites).

    Returns what pgx will use: ``.user`` is the role pgx logs in as (give it to
    ``migrate.check_migrator_user``), ``.password`` the decoded password.
    ``env`` is the PG* environment OpenFGA runs with (none: the containers
    remove :data:`PGX_ENV`); any given is refused, as it could redirect pgx.
    """
    if not isinstance(uri, str):
        raise DsnError("the datastore URI must be text")
    stray = sorted(k for k, v in (env or {}).items() if k in PGX_ENV and v)
    if stray:
        raise DsnError(
            f"the environment sets {', '.join(stray)}, which pgx reads as defaults for the "
            "datastore connection: remove them from the container"
        )
    shape = _check_shape(uri)
    keys = [k for k, _ in parse_qsl(shape["query"] or "", keep_blank_values=True)]
    _refuse_keys(keys)
    config = pgx_config(uri)
    if not config.user:
        raise DsnError(
            "the datastore URI names no user, so pgx would log in as the OS user: write "
            "postgres://openfga_migrator:PASSWORD@HOST/DATABASE"
        )
    if not config.database:
        raise DsnError(
            "the datastore URI names no database: add /openfga (its name) after the host"
        )
    check_password(config.password, "the datastore URI")
    values = dict(parse_qsl(shape["query"] or "", keep_blank_values=True))
    if values.get("sslmode") == "":
        raise DsnError(
            "the datastore URI has an empty sslmode=, which pgx reads as 'prefer' (TLS when "
            "offered, else plain text): write sslmode=require (or verify-full, or disable for "
            "a private host on purpose)"
        )
    if "sslmode" in values and values["sslmode"] not in SSLMODES:
        raise DsnError(f"sslmode is not one of {', '.join(SSLMODES)}")
    tsa = values.get("target_session_attrs")
    if tsa is not None and tsa not in TARGET_SESSION_ATTRS:
        raise DsnError(f"target_session_attrs is not one of {', '.join(TARGET_SESSION_ATTRS)}")
    if "connect_timeout" in values and not re.fullmatch(r"[0-9]{1,6}", values["connect_timeout"]):
        raise DsnError("connect_timeout is not a whole number of seconds (at most 6 digits)")
    check_tls(config)
    return config


def check_uri_as_given(uri: str, env: Mapping[str, str] | None = None) -> Dsn:
    """:func:`check_datastore_uri`, as a :class:`Dsn` of the first host pgx tries.

    For callers that need ``.user`` (the role pgx logs in as) and ``.password``;
    the whole host list is in :func:`check_datastore_uri`'s answer.
    """
    config = check_datastore_uri(uri, env)
    return _as_dsn(uri, config)


def _as_dsn(uri: str, config: PgxConfig) -> Dsn:
    query = parse_qsl(_check_shape(uri)["query"] or "", keep_blank_values=True)
    params = {k: unquote(v) for k, v in query}
    timeout = params.pop("connect_timeout", None)
    if timeout is not None and not re.fullmatch(r"[0-9]{1,6}", timeout):
        raise DsnError("connect_timeout is not a whole number of seconds (at most 6 digits)")
    params.pop("sslmode", None)
    first = config.attempts[0]
    return Dsn(
        host=first.host,
        database=config.database,
        user=config.user,
        password=config.password,
        port=first.port,
        sslmode=config.sslmode if "sslmode" in config.given else "",
        connect_timeout=None if timeout is None else int(timeout),
        params=params,
    )


# -- the builder -----------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Dsn:
    """A PostgreSQL datastore URI for OpenFGA whose text form hides the password.

    ``password=None`` gives a URI without one: pair it with the password in
    ``OPENFGA_DATASTORE_PASSWORD`` (OpenFGA's override), so the URI itself
    holds nothing secret.
    """

    host: str
    database: str
    user: str
    password: str | None = field(default=None, compare=False)
    port: int = DEFAULT_PORT
    sslmode: str = ""  # "" picks default_sslmode(host)
    # Seconds a single connection attempt may take: a dead host fails, not hangs.
    connect_timeout: int | None = 10
    params: Mapping[str, str] = field(default_factory=dict, hash=False)  # e.g. sslrootcert

    def __post_init__(self) -> None:
        for name in ("host", "database", "user"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or value != value.strip():
                raise DsnError(f"datastore {name} is empty or has surrounding spaces")
            if "\x00" in value:
                raise DsnError(f"datastore {name} holds a NUL byte")
        if not HOST_NAME.fullmatch(self.host) and (_ip(self.host) is None or "%" in self.host):
            raise DsnError(
                f"datastore host {self.host!r} is not one host name or IP address (no lists, "
                "ports, paths or spaces): give one host, e.g. postgres.internal"
            )
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not (0 < self.port < 65536)
        ):
            raise DsnError("datastore port is not a number between 1 and 65535")
        if self.password == "":
            object.__setattr__(self, "password", None)
        check_password(self.password, "the datastore password")
        bad = sorted(k for k in self.params if k not in ALLOWED_QUERY_KEYS or k == "sslmode")
        if bad:
            raise DsnError(
                "give sslmode and password as their own fields; params may hold only "
                + ", ".join(k for k in ALLOWED_QUERY_KEYS if k != "sslmode")
            )
        sslmode = check_sslmode(self.host, self.sslmode or default_sslmode(self.host))
        object.__setattr__(self, "sslmode", sslmode)
        object.__setattr__(self, "params", dict(self.params))

    def _uri(self, password: str | None) -> str:
        userinfo = quote(self.user, safe="")
        if password is not None:
            userinfo += ":" + password
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        query = {"sslmode": self.sslmode, **self.params}
        if self.connect_timeout is not None:
            query["connect_timeout"] = str(self.connect_timeout)
        return (
            f"postgres://{userinfo}@{host}:{self.port}/{quote(self.database, safe='')}"
            f"?{urlencode(query, quote_via=quote)}"
        )

    def secret_uri(self) -> str:
        """The real URI with the encoded password: only for handing to a secret."""
        return self._uri(None if self.password is None else quote(self.password, safe=""))

    def public_uri(self) -> str:
        """The URI without any password: safe for plain env vars and logs."""
        return self._uri(None)

    def with_password(self, password: str | None) -> Dsn:
        return replace(self, password=password)

    def __str__(self) -> str:
        return self._uri(None if self.password is None else REDACTED)

    def __repr__(self) -> str:
        pw = "None" if self.password is None else REDACTED
        return (
            f"Dsn(host={self.host!r}, port={self.port}, database={self.database!r}, "
            f"user={self.user!r}, password={pw}, sslmode={self.sslmode!r})"
        )

    @classmethod
    def parse(cls, uri: str) -> Dsn:
        """Read a one-host URI written by hand (the accepted shape); fills a default sslmode."""
        shape = _check_shape(uri)
        query = parse_qsl(shape["query"] or "", keep_blank_values=True)
        _refuse_keys([k for k, _ in query])
        if "," in shape["hosts"]:
            raise DsnError("a Dsn holds one host: use check_uri_as_given for a host list")
        return _as_dsn(uri, pgx_config(uri))


# -- redaction of tool output ------------------------------------------------------

# Go's url.Error prints `parse "URL": reason` with URL %q-escaped (\" inside); in
# OpenFGA's JSON logs the quotes are \" and the escapes doubled. The URL can be a
# whole password or half of one: everything up to the last `": ` goes.
_GO_PARSE = re.compile(r'parse (\\*)"(?:.*\1": |.*$)', re.MULTILINE)
# Reasons in Go's and pgx's errors that quote bytes of the URI.
_QUOTED_PART = re.compile(
    r"(invalid URL escape|invalid port|invalid character|unexpected spaces found in|"
    r'invalid percent-encoded token:) (\\*)"(?:[^"\\]|\\.)*?\2"'
)
# pgx's ParseConfigError: cannot parse `URI`: reason (its own masking is best effort).
_PGX_PARSE = re.compile(r"cannot parse `(?:.*`: |.*$)", re.MULTILINE)
_URI_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*:(?://)?[^:/@\s\"\\]*:)[^@\s\"]*@", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"\b(password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s\"\\]+)", re.IGNORECASE)
_SHORT_SECRET = 4  # below this, a secret is redacted where it stands alone, not inside words


def _forms(secret: str) -> set[str]:
    """How a secret can appear: raw, URL-encoded, Go-%q/JSON-escaped (once and twice)."""
    go = secret.replace("\\", "\\\\").replace('"', '\\"')
    forms = {secret, quote(secret, safe=""), quote(secret), go, go.replace("\\", "\\\\")}
    forms.add(quote(secret, safe="").replace("%20", "+"))
    return {f for f in forms if f}


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` without the secrets (in every form they print in) or any URI password.

    Secrets of :data:`_SHORT_SECRET` characters or more go wherever they appear;
    shorter ones wherever they stand alone (not inside a word). Whatever the
    secrets, the URI in Go's ``parse "..."`` errors and pgx's ``cannot parse``
    errors, a URI's userinfo password and a ``password=`` value always go.
    """
    for secret in sorted(secrets, key=len, reverse=True):
        for form in sorted(_forms(secret), key=len, reverse=True):
            if len(secret) >= _SHORT_SECRET:
                text = text.replace(form, REDACTED)
            else:
                text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(form)}(?![A-Za-z0-9])", REDACTED, text)
    text = _GO_PARSE.sub(lambda m: f'parse {m[1]}"<datastore URI, redacted>{m[1]}": ', text)
    text = _QUOTED_PART.sub(lambda m: f'{m[1]} {m[2]}"<redacted>{m[2]}"', text)
    text = _PGX_PARSE.sub("cannot parse `<datastore URI, redacted>`: ", text)
    text = _KEYWORD_PASSWORD.sub(rf"\1{REDACTED}", text)
    return _URI_USERINFO.sub(rf"\1{REDACTED}@", text)
