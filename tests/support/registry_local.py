"""A real OCI registry on loopback: distribution's ``registry`` (v3, from the Go module proxy).

Plain HTTP on 127.0.0.1 (go-containerregistry and cosign talk HTTP to loopback
hosts without extra flags), htpasswd (bcrypt) authentication when a user is
given, filesystem storage in a temporary directory, and an access log the tests
read to count registry round trips.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from tests.support.net import HOST, free_port
from tests.support.tools import ensure_go_tool


def bcrypt_hash(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # bcrypt through libxcrypt: Python 3.11 still ships the module

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))  # noqa: S324 (bcrypt)


class LocalRegistry:
    def __init__(self, work: Path, user: str | None = None, password: str | None = None) -> None:
        self.work = work
        self.port = free_port()
        self.address = f"{HOST}:{self.port}"
        self.user, self.password = user, password
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = work / "registry.log"

    def _config(self) -> Path:
        config: dict = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "json"},
            "storage": {"filesystem": {"rootdirectory": str(self.work / "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": self.address, "secret": "local-test-only"},
        }  # fmt: skip
        if self.user:
            assert self.password
            htpasswd = self.work / "htpasswd"
            htpasswd.write_text(f"{self.user}:{bcrypt_hash(self.password)}\n")
            config["auth"] = {"htpasswd": {"realm": "local", "path": str(htpasswd)}}
        path = self.work / "config.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    def start(self) -> LocalRegistry:
        binary = ensure_go_tool("registry")
        self.work.mkdir(parents=True, exist_ok=True)
        config = self._config()
        log = open(self.log_path, "ab")  # noqa: SIM115 (lives as long as the process)
        self.proc = subprocess.Popen(
            [str(binary), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited: {self.log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1)
                return self
            except urllib.error.HTTPError as error:
                if error.code == 401:  # up, asking for credentials
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("registry did not answer within 30 s")

    def requests(self) -> list[dict]:
        """Every HTTP request the registry served (its access log), in order."""
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if "http.request.method" in entry and "http.response.status" in entry:
                out.append(entry)
        return out

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
