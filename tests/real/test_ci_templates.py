"""The CI templates, checked by real linters and run against a recording `dagger`.

- GitHub Actions: actionlint (from the Go module proxy, pinned; it also runs
  shellcheck on `run:` scripts) and the GitHub workflow schema;
- GitLab CI: the official GitLab CI schema (check-jsonschema's vendored copy);
- the POSIX script: shellcheck (Debian) as `sh`, then run with a fake `dagger`
  on PATH that records its argv: `check` and `release` call what they should,
  and secrets travel only as env:// references.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.tools import ensure_go_tool

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "ci-templates"
GITHUB = TEMPLATES / "github-actions.yml"
GITLAB = TEMPLATES / "gitlab-ci.yml"
SCRIPT = TEMPLATES / "dagger-ci.sh"
ENGINE = json.loads((ROOT / "dagger.json").read_text())["engineVersion"]  # v0.21.11
CHECK_JSONSCHEMA = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "check-jsonschema"


def shellcheck() -> str:
    found = shutil.which("shellcheck")
    if found is None:  # scripts/ensure-tools installs it; a bare machine gets it here
        subprocess.run(["apt-get", "install", "-y", "-qq", "shellcheck"], check=True,
                       capture_output=True)  # fmt: skip
        found = shutil.which("shellcheck")
    assert found, "shellcheck is not installed (Debian package shellcheck)"
    return found


def check_jsonschema() -> str:
    path = CHECK_JSONSCHEMA if CHECK_JSONSCHEMA.exists() else shutil.which("check-jsonschema")
    assert path, "check-jsonschema is not installed (pyproject dev dependency)"
    return str(path)


def test_github_actions_template_passes_actionlint() -> None:
    shellcheck()  # actionlint runs it on the run: scripts when it is on PATH
    proc = subprocess.run([str(ensure_go_tool("actionlint")), "-color=false", str(GITHUB)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("schema", "path"), [("vendor.github-workflows", GITHUB), ("vendor.gitlab-ci", GITLAB)]
)
def test_templates_match_their_ci_schema(schema: str, path: Path) -> None:
    proc = subprocess.run([check_jsonschema(), "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_posix_script_passes_shellcheck() -> None:
    proc = subprocess.run([shellcheck(), "-s", "sh", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_github_pins_the_official_action_by_sha_and_the_engine_version() -> None:
    doc = yaml.safe_load(GITHUB.read_text())
    assert doc["env"]["DAGGER_VERSION"] == ENGINE
    uses = [s["uses"] for job in doc["jobs"].values() for s in job["steps"] if "uses" in s]
    assert all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses
    dagger_steps = [s for job in doc["jobs"].values() for s in job["steps"]
                    if s.get("uses", "").startswith("dagger/dagger-for-github@")]  # fmt: skip
    assert [s["with"]["verb"] for s in dagger_steps] == ["check", "call"]
    assert all(s["with"]["version"] == "${{ env.DAGGER_VERSION }}" for s in dagger_steps)
    release = doc["jobs"]["release"]
    assert "refs/tags/v" in release["if"] and release["needs"] == "check"
    args = dagger_steps[1]["with"]["args"]
    assert args.startswith('--version "$GITHUB_REF_NAME" release ') and "'" not in args
    for ref in re.findall(r"--(?:password|signing-key|signing-password) (\S+)", args):
        assert ref.startswith("env://")
    secret_env = dagger_steps[1]["env"]
    assert all(v.startswith("${{ secrets.") for v in secret_env.values())


def test_gitlab_pins_the_engine_version_and_releases_on_tags() -> None:
    doc = yaml.safe_load(GITLAB.read_text())
    assert "v" + doc["variables"]["DAGGER_VERSION"] == ENGINE
    assert doc["check"]["script"] == ["dagger check"]
    assert "CI_COMMIT_TAG" in doc["release"]["rules"][0]["if"]
    release = " ".join(doc["release"]["script"])
    assert 'dagger call --version "$CI_COMMIT_TAG" release' in release
    assert "env://CI_REGISTRY_PASSWORD" in release


def fake_dagger(bin_dir: Path, log: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    fake = bin_dir / "dagger"
    fake.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = version ]; then echo "dagger {ENGINE} (fake)"; exit 0; fi\n'
        f'printf "%s\\n" "$*" >> "{log}"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)


def run_script(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    log = tmp_path / "dagger.log"
    fake_dagger(tmp_path / "bin", log)
    full_env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), **env}
    return subprocess.run(["sh", str(SCRIPT), *args], env=full_env, capture_output=True,
                          text=True, cwd=tmp_path)  # fmt: skip


def test_script_check_runs_dagger_check(tmp_path: Path) -> None:
    proc = run_script(tmp_path, "check")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dagger.log").read_text() == "check\n"


def test_script_release_passes_secrets_as_references_only(tmp_path: Path) -> None:
    secrets = {"REGISTRY_PASSWORD": "reg-s3cret", "COSIGN_PRIVATE_KEY": "-----KEY-----",
               "COSIGN_PASSWORD": "key-s3cret"}  # fmt: skip
    proc = run_script(tmp_path, "release", "v1.22.1", REGISTRY="ghcr.io",
                      REGISTRY_NAMESPACE="acme", REGISTRY_USERNAME="ci-bot", **secrets)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    called = (tmp_path / "dagger.log").read_text()
    assert called.startswith("call --version v1.22.1 release --registry ghcr.io")
    for name in secrets:
        assert f"env://{name}" in called
    for value in secrets.values():
        assert value not in called and value not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [(("release", "1.22.1"), "vX.Y.Z"), (("release", "v1.22.1"), "REGISTRY"), (("x",), "unknown")],
)
def test_script_refuses_bad_input_before_calling_dagger(tmp_path, args, message) -> None:
    proc = run_script(tmp_path, *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert not (tmp_path / "dagger.log").exists()
