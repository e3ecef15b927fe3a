"""A real S3-compatible server on loopback: versitygw (posix backend) from the Go module proxy.

Test harness (not shipped). ``versitygw`` v1.8.0 is built once by
:func:`tests.support.tools.ensure_go_tool`; each server gets its own temporary
directory (a bucket is a directory under it) and root credentials passed in the
environment (``ROOT_ACCESS_KEY_ID`` / ``ROOT_SECRET_ACCESS_KEY``), never argv.
With ``tls=True`` it serves HTTPS with a certificate for 127.0.0.1 from an
ephemeral CA (the openssl commands the PostgreSQL harness uses).

    with running_s3(buckets=("backups",)) as s3:
        s3.endpoint        # http://127.0.0.1:PORT (https://... with tls=True)
        s3.env             # {"AWS_ACCESS_KEY_ID": ..., "AWS_SECRET_ACCESS_KEY": ...}
        s3.ca_file         # the CA (tls=True)
        s3.root            # the posix backend's directory: objects are plain files
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from openfga_release.recipes import backup as bk
from openfga_release.recipes import postgres as pgconf

from tests.support.net import HOST, free_port
from tests.support.tools import ensure_go_tool

READY_TIMEOUT = 30.0  # a bound on waiting, not an assertion


@dataclass
class S3Server:
    endpoint: str
    port: int
    root: Path
    access_key: str
    secret_key: str
    ca_file: str | None
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def env(self) -> dict[str, str]:
        return {bk.ACCESS_KEY_ENV: self.access_key, bk.SECRET_KEY_ENV: self.secret_key}

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_s3(buckets: tuple[str, ...] = ("backups",), *, tls: bool = False) -> Iterator[S3Server]:
    binary = ensure_go_tool("versitygw")
    base = Path(tempfile.mkdtemp(prefix="openfga-s3-"))
    root = base / "data"
    root.mkdir()
    for bucket in buckets:
        (root / bucket).mkdir()
    port = free_port()
    access, secret = "backup-" + secrets.token_hex(4), secrets.token_urlsafe(24)
    env = {**os.environ, "ROOT_ACCESS_KEY_ID": access, "ROOT_SECRET_ACCESS_KEY": secret}
    args = [str(binary), "--port", f"{HOST}:{port}"]
    ca_file = None
    if tls:
        tls_dir = base / "tls"
        for cmd in pgconf.tls_commands(str(tls_dir), str(base / "ca"), ["localhost", HOST]):
            subprocess.run(cmd, check=True, capture_output=True)
        args += ["--cert", str(tls_dir / pgconf.SERVER_CERT),
                 "--key", str(tls_dir / pgconf.SERVER_KEY)]  # fmt: skip
        ca_file = str(tls_dir / pgconf.CA_CERT)
    log_path = base / "versitygw.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*args, "posix", str(root)], env=env, stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip
    scheme = "https" if tls else "http"
    server = S3Server(f"{scheme}://{HOST}:{port}", port, root, access, secret, ca_file, proc,
                      log_path)  # fmt: skip
    try:
        _wait_listening(server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def _wait_listening(server: S3Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"versitygw exited ({server.process.returncode}):\n{server.logs()}")
        try:
            with socket.create_connection((HOST, server.port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"versitygw did not listen in time:\n{server.logs()}") from None
            time.sleep(0.1)
