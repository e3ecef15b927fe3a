"""A real PostgreSQL for the tests: Debian's binaries, this project's files.

The server is started by ``images/postgres/openfga-postgres.sh`` -- the very
entrypoint of the Unikraft rootfs and the container image -- with the config
and init scripts of ``images/postgres`` (copied to a temporary directory so the
postgres OS user can read them), listening on 127.0.0.1 at a free port, with
TLS from an ephemeral CA made by the openssl CLI (the pipeline's own
``postgres.tls_commands``). The tests run as root; the script switches to the
``postgres`` OS user itself, exactly as in the image.

API::

    from tests.support.pg import running_postgres, TEST_PASSWORDS
    from tests.support.pg import pg_server_fixture  # noqa: F401  (the shared "pg_server")

    with running_postgres(tls=True) as server:   # stops the server and removes its files on exit
        server.host, server.port                 # "127.0.0.1", a free port
        server.names                             # openfga_release.postgres.Names (database, roles)
        server.passwords                         # {"migrator": ..., "app": ..., "readonly": ...}
        server.dsn("migrator")  # postgres://openfga_migrator:...@127.0.0.1:PORT/openfga?sslmode=require
        server.dsn("app", sslmode="verify-full")  # + sslrootcert=<ca_file> (cert: 127.0.0.1)
        server.connect("app")                    # psycopg connection over TCP + TLS as that role
        server.superuser(dbname="openfga")       # psycopg, as postgres over the Unix socket
        server.ca_file                           # CA certificate (None when tls=False)
        server.log_file                          # the server's and the start script's stderr
        server.restart()                         # a second boot on the same volume
        server.kill()                            # SIGKILL everything (a crash); then start()
        server.base, server.volume, server.pgdata, server.socket_dir

``dsn`` roles are "migrator", "app", "readonly" (or a role name) and take an
explicit ``password=`` to test wrong ones; user and password are
percent-encoded (TEST_PASSWORDS hold ``@ : / % ?`` on purpose).

Keyword arguments of ``running_postgres`` / ``PgServer``: ``tls`` (default
True), ``passwords`` (default TEST_PASSWORDS), ``names`` (default Names()),
``passwords_as_files`` (pass them as *_FILE), ``extra_env`` (more environment
for the start script), ``server_args`` (more ``postgres`` arguments, e.g.
``["-c", "log_statement=all"]``), ``memory_conf`` (replaces memory.conf).

The session fixture ``pg_server`` shares one server (TLS on, the test
passwords) between test modules: import it into a test module with
``from tests.support.pg import pg_server_fixture  # noqa: F401`` (registered
under the name ``pg_server``, so ruff sees no redefinition) and take
``pg_server: PgServer`` as an argument. Do not change its roles or passwords;
create your own objects and drop them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from openfga_release import postgres as pgconf

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "images" / "postgres"
HOST = "127.0.0.1"
OS_USER = "postgres"
START_TIMEOUT = 120.0  # a bound on waiting, not an assertion

# Distinct, strong, and full of URL-reserved characters.
TEST_PASSWORDS = {
    "migrator": "Mig-r@tor:pw/1%x?k",
    "app": "App#s3cret:p@ss/w%rd",
    "readonly": "R3ad-0nly?p@ss:w/%d",
}


class ServerExited(RuntimeError):
    """The start script or the server exited before accepting connections."""

    def __init__(self, returncode: int, log: str) -> None:
        super().__init__(f"postgres exited with {returncode} before it was ready:\n{log[-4000:]}")
        self.returncode = returncode
        self.log = log


def bindir() -> Path:
    """The newest PostgreSQL installed from Debian's packages."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3])
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: run scripts/ensure-tools (scripts/test does)"
        )
    return found[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def make_tls(out: Path, work: Path, hostnames: list[str]) -> None:
    """The pipeline's openssl commands, run with this machine's openssl."""
    for cmd in pgconf.tls_commands(str(out), str(work), hostnames):
        subprocess.run(cmd, check=True, capture_output=True)


class PgServer:
    """One server in its own temporary directory; see the module docstring."""

    def __init__(
        self,
        *,
        tls: bool = True,
        passwords: dict[str, str] | None = None,
        names: pgconf.Names | None = None,
        passwords_as_files: bool = False,
        extra_env: dict[str, str] | None = None,
        server_args: list[str] | None = None,
        memory_conf: str | None = None,
    ) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("the PostgreSQL tests run as root: the start script switches to "
                               f"the {OS_USER} OS user itself, as it does in the image")
        self.host = HOST
        self.port = free_port()
        self.names = names or pgconf.Names()
        self.passwords = dict(TEST_PASSWORDS if passwords is None else passwords)
        self.base = Path(tempfile.mkdtemp(prefix="openfga-pg-", dir="/tmp"))
        self.base.chmod(0o755)  # the postgres user must reach the files below
        self.config = self.base / "config"
        shutil.copytree(IMAGE_DIR, self.config)
        if memory_conf is not None:
            (self.config / "memory.conf").write_text(memory_conf)
        self.volume = self.base / "volume"
        self.pgdata = self.volume / "postgres"
        self.socket_dir = self.base / "run"
        self.tls_dir = self.base / "tls"
        self.log_file = self.base / "postgres.log"
        self.ca_file: Path | None = None
        if tls:
            make_tls(self.tls_dir, self.base / "ca", ["localhost", HOST])
            # Like a Kubernetes secret volume: PostgreSQL would refuse this key as
            # is; the start script installs a copy it accepts.
            (self.tls_dir / pgconf.SERVER_KEY).chmod(0o644)
            self.ca_file = self.tls_dir / pgconf.CA_CERT
        self.env = self._env(passwords_as_files, extra_env or {})
        self.args = ["-c", f"port={self.port}", "-c", f"listen_addresses={HOST}",
                     *(server_args or [])]
        self.proc: subprocess.Popen[bytes] | None = None

    def _env(self, as_files: bool, extra: dict[str, str]) -> dict[str, str]:
        env = {
            "PATH": f"{bindir()}:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.base),
            "PGDATA": str(self.pgdata),
            "POSTGRES_CONFIG_DIR": str(self.config),
            "POSTGRES_INITDB_DIR": str(self.config / "initdb.d"),
            "POSTGRES_RUN_DIR": str(self.socket_dir),
            "POSTGRES_TLS_DIR": str(self.tls_dir),
            **self.names.env(),
        }
        for kind, var in pgconf.PASSWORD_ENV.items():
            if kind not in self.passwords:
                continue
            if as_files:
                secret = self.base / "secrets" / kind
                secret.parent.mkdir(mode=0o700, exist_ok=True)
                secret.write_text(self.passwords[kind] + "\n")
                secret.chmod(0o600)
                env[var + "_FILE"] = str(secret)
            else:
                env[var] = self.passwords[kind]
        env.update(extra)
        return env

    # ------------------------------------------------------------ lifecycle

    def start(self) -> PgServer:
        """Run the start script; return once the server accepts connections."""
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.config / pgconf.START_SCRIPT), *self.args],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise ServerExited(self.proc.returncode, self.log())
            with contextlib.suppress(psycopg.OperationalError):
                self.superuser(dbname="postgres").close()
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"postgres was not ready in {START_TIMEOUT:.0f} s:\n{self.log()[-4000:]}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGINT, what the image's STOPSIGNAL sends)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL the server and all its processes, like an instance that is
        switched off: the next start must recover."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def restart(self) -> PgServer:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        if self.proc is not None:  # anything the start script left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    # ---------------------------------------------------------- connections

    def role(self, who: str) -> str:
        return self.names.role(who) if who in pgconf.PASSWORD_ENV or who == "owner" else who

    def dsn(
        self,
        who: str,
        password: str | None = None,
        sslmode: str = "require",
        dbname: str | None = None,
    ) -> str:
        """A URL for ``who`` (migrator, app, readonly or a role name), percent-encoded."""
        pw = self.passwords.get(who, "") if password is None else password
        url = (f"postgres://{quote(self.role(who), safe='')}:{quote(pw, safe='')}@{self.host}:"
               f"{self.port}/{quote(dbname or self.names.database, safe='')}?sslmode={sslmode}")
        if sslmode in ("verify-ca", "verify-full") and self.ca_file:
            url += f"&sslrootcert={quote(str(self.ca_file), safe='/')}"
        return url

    def connect(self, who: str, password: str | None = None, sslmode: str = "require",
                dbname: str | None = None, **kw: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(who, password, sslmode, dbname), connect_timeout=10, **kw)

    def superuser(self, dbname: str | None = None, **kw: Any) -> psycopg.Connection[Any]:
        """``postgres`` over the Unix socket (peer authentication, root mapped in pg_ident.conf)."""
        kw.setdefault("autocommit", True)
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres",
                               dbname=dbname or self.names.database, connect_timeout=10, **kw)


@contextlib.contextmanager
def running_postgres(**kw: Any) -> Iterator[PgServer]:
    """A started :class:`PgServer`; stopped and removed afterwards, even on failure."""
    server = PgServer(**kw)
    try:
        yield server.start()
    finally:
        server.cleanup()


@pytest.fixture(scope="session", name="pg_server")
def pg_server_fixture() -> Iterator[PgServer]:
    """One shared server for the session: TLS on, TEST_PASSWORDS, default names."""
    with running_postgres() as server:
        yield server
