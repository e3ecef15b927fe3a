"""Real workloads for the FAKE platform (tests/support/ukc_fake.py), for tests only.

:class:`NetnsRunner` runs what a KraftCloud instance would run, for real:

* an OpenFGA image runs the real OpenFGA binary (``ensure_openfga(version)``)
  with the instance's argv (``/usr/bin/openfga`` mapped to the binary) and env;
* a PostgreSQL image runs the project's start script
  (``images/postgres/openfga-postgres.sh``) with Debian's PostgreSQL, the
  Kraftfile's env (PGDATA on the instance's volume directory, a self-signed
  certificate made on first boot) plus the instance's env, as root (the script
  drops to the postgres user itself);
* each instance in its own network namespace (``ip netns add`` + a veth on a
  bridge), its private IP the one the fake reports. ``/etc/netns/<ns>/hosts``
  holds ``<name>.internal`` for every instance (the private network) and the
  service groups' public names (-> the edge); nothing else resolves (the
  namespace's resolver is 127.0.0.1, where nothing listens).

:class:`Edge` is the public side: a TLS (CA made here with openssl) HTTP/1.1
proxy on the bridge address, port 443, that routes each request by its Host
header to the service group's instances in state ``running`` (round robin; a
connection refused tries the next), never to ``draining``/``stopping`` ones.
:meth:`NetnsRunner.client_namespace` is a namespace that resolves only the
public names: the deploy program runs there, as it would on a CI runner.

Not modelled: scale-to-zero (instances stay up), restart policies, memory
limits, the unikernel itself (a crash is injected through the fake's faults).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.pg import IMAGE_DIR, debian
from tests.support.ukc_fake import FakeInstance, UkcFake

OPENFGA_IN_IMAGE = "/usr/bin/openfga"


@dataclass(frozen=True)
class Image:
    kind: str  # "openfga" | "postgres"
    binary: Path | None = None  # openfga


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


@dataclass
class _Proc:
    popen: subprocess.Popen[bytes]
    reader: threading.Thread
    kind: str


class NetnsRunner:
    """Starts, stops and wires real workloads; see the module docstring."""

    def __init__(self, images: dict[str, Image], metro: str = "fra") -> None:
        self.images = images
        self.metro = metro
        self.id = uuidlib.uuid4().hex[:6]
        octet = 100 + int(self.id, 16) % 150
        self.subnet = f"10.213.{octet}."
        self.bridge_ip = f"{self.subnet}1"
        self.bridge = f"ukcbr{self.id}"
        self.work = Path(tempfile.mkdtemp(prefix="ukc-fake-", dir="/tmp"))
        self.work.chmod(0o755)
        self.namespaces: dict[str, str] = {}  # instance uuid -> ns
        self.procs: dict[str, _Proc] = {}
        self.client_ns = ""
        self.fake: UkcFake | None = None
        self.drain_s = 1.0
        self._pgconfig: Path | None = None
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.bridge_ip}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")

    # ------------------------------------------------------------ namespaces
    def _ns(self, key: str, ip: str) -> str:
        short = uuidlib.uuid5(uuidlib.NAMESPACE_OID, key + self.id).hex[:8]
        ns = f"ukc-{short}"
        if ns in self.namespaces.values() or ns == self.client_ns:
            return ns
        sh("ip", "netns", "add", ns)
        host_if, ns_if = f"vh{short}", f"vn{short}"
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", ns)
        sh("ip", "link", "set", host_if, "master", self.bridge, "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ns_if)
        sh("ip", "-n", ns, "link", "set", ns_if, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", self.bridge_ip)
        etc = Path("/etc/netns") / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")  # nothing answers there
        (etc / "hosts").write_text("127.0.0.1 localhost\n")
        return ns

    def client_namespace(self) -> str:
        """A namespace that resolves only the public names (for the deploy program)."""
        if not self.client_ns:
            self.client_ns = self._ns("client", f"{self.subnet}250")
            if self.fake:
                self.changed(self.fake)
        return self.client_ns

    def changed(self, fake: UkcFake) -> None:
        """Rewrite every namespace's hosts file in place (the bind mount keeps the inode)."""
        self.fake = fake
        public = [f"{self.bridge_ip} {g.fqdn}" for g in list(fake.groups.values())]
        private = [f"{i.private_ip} {i.name}.internal" for i in list(fake.instances.values())
                   if i.state not in ("stopped",) or i.uuid in self.namespaces]
        for ns, lines in [*((ns, private + public) for ns in self.namespaces.values()),
                          *([(self.client_ns, public)] if self.client_ns else [])]:
            hosts = Path("/etc/netns") / ns / "hosts"
            with open(hosts, "r+") as f:
                f.seek(0)
                f.write("127.0.0.1 localhost\n" + "".join(ln + "\n" for ln in lines))
                f.truncate()

    # ------------------------------------------------------------ workloads
    def _volume_dir(self, fake: UkcFake, inst: FakeInstance) -> tuple[Path, str] | None:
        for vid, at in inst.volumes:
            d = self.work / "volumes" / vid
            if not d.exists():
                d.mkdir(parents=True)
                d.chmod(0o755)
                d.parent.chmod(0o755)
            return d, at
        return None

    def _pg_config(self) -> Path:
        if self._pgconfig is None:
            self._pgconfig = self.work / "pgconfig"
            shutil.copytree(IMAGE_DIR, self._pgconfig)
            sh("chmod", "-R", "a+rX", str(self._pgconfig))
        return self._pgconfig

    def _command(self, fake: UkcFake, inst: FakeInstance) -> tuple[list[str], dict[str, str]]:
        image = self.images.get(inst.image)
        if image is None:
            raise RuntimeError(f"FAKE: no workload for image {inst.image}")
        base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        if image.kind == "openfga":
            assert image.binary is not None
            argv = list(inst.args or [OPENFGA_IN_IMAGE, "run"])
            if argv[0] == OPENFGA_IN_IMAGE:
                argv[0] = str(image.binary)
            return argv, {**base, "HOME": "/tmp", **inst.env}
        vol = self._volume_dir(fake, inst)
        if vol is None:
            raise RuntimeError("FAKE: a PostgreSQL instance needs a volume")
        vdir, at = vol
        config = self._pg_config()
        run_dir = self.work / "run" / inst.uuid
        env = {
            # the Kraftfile's env (kraftfiles/postgres/Kraftfile), paths mapped to this machine
            "PGDATA": f"{vdir}/postgres",
            "POSTGRES_CONFIG_DIR": str(config),
            "POSTGRES_INITDB_DIR": str(config / "initdb.d"),
            "POSTGRES_TLS_DIR": str(self.work / "no-tls-files"),
            "POSTGRES_RUN_DIR": str(run_dir),
            "POSTGRES_TLS_SELF_SIGNED": "true",
            "PATH": f"{debian().bindir}:{base['PATH']}",
            "LANG": "C.UTF-8", "HOME": str(vdir),
        }
        env.update({k: (v.replace(at, str(vdir), 1) if v.startswith(at + "/") else v)
                    for k, v in inst.env.items()})
        return [str(config / "openfga-postgres.sh")], env

    def start(self, fake: UkcFake, inst: FakeInstance) -> None:
        self.fake = fake
        ns = self._ns(inst.uuid, inst.private_ip)
        self.namespaces[inst.uuid] = ns
        self.changed(fake)
        argv, env = self._command(fake, inst)
        kind = self.images[inst.image].kind
        popen = subprocess.Popen(["ip", "netns", "exec", ns, *argv], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)

        def read() -> None:
            assert popen.stdout is not None
            for chunk in iter(lambda: popen.stdout.read1(65536), b""):  # type: ignore[union-attr]
                with fake.cond:
                    inst.console += chunk
            code = popen.wait()
            fake.exited(inst.uuid, code if code >= 0 else 128 - code)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        self.procs[inst.uuid] = _Proc(popen, reader, kind)

    def stop(self, fake: UkcFake, inst: FakeInstance, force: bool) -> None:
        proc = self.procs.pop(inst.uuid, None)
        if proc is None or proc.popen.poll() is not None:
            if proc:
                proc.reader.join(10)
            if inst.state != "stopped":
                fake.exited(inst.uuid, 0)
            return
        sig = signal.SIGKILL if force else (signal.SIGINT if proc.kind == "postgres"
                                            else signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, sig)
        try:
            proc.popen.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait()
        proc.reader.join(10)

    def close(self) -> None:
        for uuid in list(self.procs):
            proc = self.procs.pop(uuid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait()
        for ns in {*self.namespaces.values(), *([self.client_ns] if self.client_ns else [])}:
            sh("ip", "netns", "del", ns, check=False)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
        sh("ip", "link", "del", self.bridge, check=False)
        shutil.rmtree(self.work, ignore_errors=True)


# ---------------------------------------------------------------- the public edge


def make_ca(out: Path, metro: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for ``*.<metro>.unikraft.app``: (ca, cert, key)."""
    out.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (out / n for n in ("ca.key", "ca.pem", "edge.key", "edge.csr",
                                                    "edge.pem"))
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj",
       "/CN=FAKE unikraft cloud edge CA (tests only)")
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", str(key), "-out", str(csr), "-subj", f"/CN=*.{metro}.unikraft.app")
    ext = out / "ext.cnf"
    ext.write_text(f"subjectAltName=DNS:*.{metro}.unikraft.app\n"
                   "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    sh("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
       "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
        "proxy-connection", "upgrade", "te", "trailer"}


class Edge:
    """The FAKE's public edge: TLS on ``host:port``, HTTP/1.1 routed by Host header."""

    def __init__(self, fake: UkcFake, host: str, port: int, work: Path) -> None:
        self.fake, self.host, self.port = fake, host, port
        self.ca, cert, key = make_ca(work / "edge-tls", fake.metro)
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self._rr = itertools.count()
        self.loop = asyncio.new_event_loop()
        self.served = 0
        self.failed = 0
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.client = httpx.AsyncClient(timeout=30.0)
        server = self.loop.run_until_complete(asyncio.start_server(
            self._conn, self.host, self.port, ssl=self.ctx))
        self._server = server
        ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            await self.client.aclose()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: list[tuple[str, str]] = []
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, v = h.decode("latin-1").split(":", 1)
                    headers.append((k.strip(), v.strip()))
                low = {k.lower(): v for k, v in headers}
                body = await reader.readexactly(int(low.get("content-length", "0") or 0))
                status, rheaders, rbody = await self._forward(
                    method, target, low.get("host", "").split(":")[0], headers, body)
                out = [f"HTTP/1.1 {status}\r\n".encode()]
                out += [f"{k}: {v}\r\n".encode("latin-1") for k, v in rheaders
                        if k.lower() not in _HOP]
                out.append(f"content-length: {len(rbody)}\r\n\r\n".encode())
                writer.write(b"".join(out) + rbody)
                await writer.drain()
                if low.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, ssl.SSLError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _forward(self, method: str, target: str, host: str,
                       headers: list[tuple[str, str]], body: bytes
                       ) -> tuple[str, list[tuple[str, str]], bytes]:
        port = self.fake.group_port(host)
        backends = self.fake.routable(host)
        if port is None or not backends:
            self.failed += 1
            return "503 Service Unavailable", [], b"FAKE edge: no running instance\n"
        start = next(self._rr)
        for i in range(len(backends)):
            b = backends[(start + i) % len(backends)]
            try:
                resp = await self.client.request(
                    method, f"http://{b.private_ip}:{port}{target}", content=body,
                    headers=[(k, v) for k, v in headers if k.lower() not in _HOP])
            except httpx.ConnectError:
                continue  # not listening (yet, or any more): the next one
            except httpx.HTTPError as exc:
                self.failed += 1
                return "502 Bad Gateway", [], f"FAKE edge: {exc}\n".encode()
            self.served += 1
            return f"{resp.status_code} {resp.reason_phrase}", list(resp.headers.items()), \
                resp.content
        self.failed += 1
        return "502 Bad Gateway", [], b"FAKE edge: no instance accepted the connection\n"


def public_client(edge: Edge, fqdn: str, **kw: Any) -> httpx.Client:
    """A client for https://<fqdn> from the host: to the edge's address, SNI and Host = fqdn."""
    class _T(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            request.url = request.url.copy_with(host=edge.host, port=edge.port)
            request.extensions = {**request.extensions, "sni_hostname": fqdn}
            request.headers["host"] = fqdn
            return super().handle_request(request)
    ctx = ssl.create_default_context(cafile=str(edge.ca))
    return httpx.Client(base_url=f"https://{fqdn}", transport=_T(verify=ctx), **kw)


def wait_for(pred: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {seconds:.0f} s")
        time.sleep(0.2)


REPO = Path(__file__).resolve().parents[2]


def run_deploy(runner: NetnsRunner, fake: UkcFake, edge: Edge, command: str, *,
               openfga_image: str, postgres_image: str, secrets: dict[str, str],
               extra: tuple[str, ...] = (), timeout: float = 900
               ) -> subprocess.CompletedProcess[str]:
    """``python -m openfga_release.recipes.kraftcloud <command>`` as its container runs it:
    in a namespace that resolves only public names, secrets in env, nothing else."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO / "ci" / "src"),
           "UKC_TOKEN": fake.token, "SSL_CERT_FILE": str(edge.ca), **secrets}
    argv = ["ip", "netns", "exec", runner.client_namespace(), sys.executable, "-m",
            "openfga_release.recipes.kraftcloud", command, "--metro", fake.base_url,
            "--openfga-image", openfga_image, "--postgres-image", postgres_image,
            "--allow-tags", "--ca-file", str(edge.ca), "--postgres-memory-mb", "512", *extra]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
