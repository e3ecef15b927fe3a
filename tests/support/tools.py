"""Real tools the tests run, built once per machine from the Go module proxy.

One owner for every tool version the tests use (:data:`GO_TOOLS`) and for where
built binaries live: ``~/.cache/openfga-release/`` (override with
``OPENFGA_RELEASE_CACHE``), keyed by name and version, so a warm CI run reuses
them and a version bump rebuilds. Builds are locked (``flock``) so parallel test
processes, helpers and benchmarks build each tool only once.

A tool whose module has ``replace`` directives cannot be ``go install``ed; it is
built from a throwaway module that requires it (:attr:`GoTool.via_require`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from openfga_release.recipes import publish, sign


def cache_root() -> Path:
    """Where heavy builds are kept between runs (outside the checkout: clean clones reuse them)."""
    root = os.environ.get("OPENFGA_RELEASE_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "openfga-release"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class GoTool:
    """A Go program pinned by module version; ``package`` is what ``go build`` builds."""

    name: str
    module: str
    version: str
    package: str = ""  # default: the module path itself
    via_require: bool = False  # build from a module that requires it (upstream has replaces)
    env: dict[str, str] = field(default_factory=dict, hash=False)
    ldflags: str = "-s -w"

    @property
    def target(self) -> str:
        return self.package or self.module


# Every Go tool the tests build, pinned. A version bump here is the only change needed.
GO_TOOLS: dict[str, GoTool] = {
    t.name: t
    for t in (
        GoTool("registry", "github.com/distribution/distribution/v3", "v3.1.2",
               "github.com/distribution/distribution/v3/cmd/registry"),
        # crane and cosign: the versions the pipeline builds (one owner: the recipes).
        GoTool("crane", publish.CRANE_MODULE, publish.CRANE_VERSION, publish.CRANE_PACKAGE),
        GoTool("cosign", sign.COSIGN_MODULE, sign.COSIGN_VERSION, sign.COSIGN_PACKAGE),
        GoTool("actionlint", "github.com/rhysd/actionlint", "v1.7.12",
               "github.com/rhysd/actionlint/cmd/actionlint"),
        GoTool("versitygw", "github.com/versity/versitygw", "v1.8.0",
               "github.com/versity/versitygw/cmd/versitygw"),
        GoTool("kwok", "sigs.k8s.io/kwok", "v0.8.0", "sigs.k8s.io/kwok/cmd/kwok"),
        GoTool("etcd", "go.etcd.io/etcd/server/v3", "v3.6.16", via_require=True),
    )
}  # fmt: skip


def _go_env(tool: GoTool, gobin: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOFLAGS", "GOOS", "GOARCH")}
    env.update({"CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"})
    if gobin is not None:
        env["GOBIN"] = str(gobin)
    env.update(tool.env)
    return env


def ensure_go_tool(name: str) -> Path:
    """The built binary of ``GO_TOOLS[name]``, building it once (minutes, cold)."""
    tool = GO_TOOLS[name]
    out_dir = cache_root() / "tools" / f"{tool.name}-{tool.version}"
    binary = out_dir / tool.name
    if binary.exists():
        return binary
    with locked(out_dir.parent / f"{out_dir.name}.lock"):
        if binary.exists():
            return binary
        partial = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        if tool.via_require:
            _build_via_require(tool, partial / tool.name)
        else:
            _run(["go", "install", "-trimpath", f"-ldflags={tool.ldflags}",
                  f"{tool.target}@{tool.version}"], _go_env(tool, partial))  # fmt: skip
            built = partial / Path(tool.target).name
            if built.name != tool.name:
                built.rename(partial / tool.name)
        shutil.rmtree(out_dir, ignore_errors=True)
        partial.rename(out_dir)
    return binary


def _build_via_require(tool: GoTool, output: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=f"build-{tool.name}-") as tmp:
        env = _go_env(tool)
        _run(["go", "mod", "init", f"local.test/build-{tool.name}"], env, cwd=tmp)
        _run(["go", "get", f"{tool.module}@{tool.version}"], env, cwd=tmp)
        _run(["go", "build", "-trimpath", f"-ldflags={tool.ldflags}", "-o", str(output),
              tool.target], env, cwd=tmp)  # fmt: skip


def _run(argv: list[str], env: dict[str, str], cwd: str | None = None) -> None:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
