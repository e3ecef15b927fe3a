"""The end-to-end check's fixed choices: names, the TLS policy, the roles it plays.

test-e2e starts an ephemeral PostgreSQL bound as :data:`POSTGRES_ALIAS`, with a
certificate from a throwaway CA made for that run; OpenFGA reaches it with
``sslmode=verify-full`` against that CA (:data:`POSTGRES_CA`), migrates as the
migrator role and serves as the app role.
"""

from __future__ import annotations

from .dsn import Dsn
from .postgres import Names

POSTGRES_ALIAS = "postgres"  # how the check's OpenFGA reaches its database
POSTGRES_CA = "/etc/ssl/postgres/ca.crt"  # the CA OpenFGA verifies the server with
PASSWORD_ROLES = ("migrator", "app", "readonly")  # the LOGIN roles that get a password


def datastore_uri(role: str, names: Names) -> str:
    """The password-free URI of ``role``: encrypted, and the server must prove it is
    ``postgres`` of the run's CA (verify-full)."""
    return Dsn(
        POSTGRES_ALIAS, names.database, role,
        sslmode="verify-full", params={"sslrootcert": POSTGRES_CA},
    ).public_uri()  # fmt: skip
