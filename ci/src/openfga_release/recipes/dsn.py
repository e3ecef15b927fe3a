"""OpenFGA datastore URIs for PostgreSQL: one builder, one set of rules.

Plain module (no dagger import). OpenFGA parses ``--datastore-uri`` with Go's
``url.Parse``, so a password holding ``@ : / ? # %`` or a space must be
percent-encoded or the URI breaks (a common cause of failed migrations).
:class:`Dsn` encodes every part, applies the TLS rules and keeps the password
out of ``str``/``repr`` and out of every error: only :meth:`Dsn.secret_uri`
returns it, for handing straight to a secret.

TLS rules: a host that is not loopback or private (an RFC 1918/ULA address, a
single-label name, or a name under ``.internal``, ``.local``, ``.svc``...)
is reached over the network, so its ``sslmode`` must be ``require`` or
stricter; ``disable``/``allow``/``prefer`` would let a password travel in
clear text and are refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

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
        raise DsnError(f"sslmode {sslmode!r} is not one of {', '.join(SSLMODES)}")
    if not is_private(host) and SSLMODES.index(sslmode) < SSLMODES.index(PUBLIC_MINIMUM):
        raise DsnError(
            f"sslmode={sslmode} for {host}: that host is not loopback or private, so the "
            "password would cross the network unencrypted. Use sslmode=require (or "
            "verify-full with sslrootcert), or reach the database by a private name "
            "such as <name>.internal"
        )
    return sslmode


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
            if not value or value != value.strip():
                raise DsnError(f"datastore {name} {value!r} is empty or has surrounding spaces")
        if any(c in self.host for c in "/@?#% "):
            raise DsnError(f"datastore host {self.host!r} is not a host name or address")
        if not 0 < self.port < 65536:
            raise DsnError(f"datastore port {self.port} is not between 1 and 65535")
        if self.password == "":
            object.__setattr__(self, "password", None)
        if "sslmode" in self.params or "password" in self.params:
            raise DsnError("give sslmode and password as their own fields, not in params")
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
        """Check a URI someone wrote by hand; errors name the part, never the password."""
        try:
            parts = urlsplit(uri)
            port = parts.port if parts.port is not None else DEFAULT_PORT
        except ValueError:
            raise DsnError(_unparseable_hint(uri)) from None
        if parts.scheme not in _SCHEMES:
            raise DsnError(f"datastore URI scheme {parts.scheme!r} is not postgres:// or postgresql://")
        if parts.fragment or not parts.hostname:
            raise DsnError(_unparseable_hint(uri))
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        timeout = query.pop("connect_timeout", None)
        sslmode = query.pop("sslmode", "")
        return cls(
            host=parts.hostname,
            database=unquote(parts.path.lstrip("/")),
            user=unquote(parts.username or ""),
            password=None if parts.password is None else unquote(parts.password),
            port=port,
            sslmode=sslmode,
            connect_timeout=_seconds(timeout),
            params=query,
        )


def _seconds(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise DsnError(f"connect_timeout={value!r} is not a whole number of seconds")
    return int(value)


def _unparseable_hint(uri: str) -> str:
    scheme = uri.partition("://")[0] or "postgres"
    return (
        f"the datastore URI ({scheme}://...) does not parse as a URL; the usual cause is a "
        "password or user with @ : / ? # % or spaces that is not percent-encoded. Build it "
        "with openfga_release.recipes.dsn.Dsn, or encode them (@ is %40, / is %2F, # is %23)"
    )


def check_uri_as_given(uri: str) -> Dsn:
    """Check a URI that OpenFGA receives unchanged (a secret this project never rewrites).

    :meth:`Dsn.parse` fills in a default sslmode, but OpenFGA's driver would
    not: with none it uses ``prefer``, which falls back to plain text. So for a
    host that is not private the URI itself must say ``require`` or stricter.
    """
    dsn = Dsn.parse(uri)
    given = dict(parse_qsl(urlsplit(uri).query, keep_blank_values=True))
    if not is_private(dsn.host) and "sslmode" not in given:
        raise DsnError(
            f"the datastore URI for {dsn.host} names no sslmode, so OpenFGA would use "
            "'prefer', which can fall back to an unencrypted connection: add "
            "?sslmode=require (or verify-full) to the URI"
        )
    return dsn
