"""smoke.py's own guards: every argument is refused before anything is sent.

``smoke_command`` (what the module runs, checked before any container) and the
script's ``main`` (which checks again on its own) share one set of rules.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from openfga_release.standalone import smoke
from openfga_release.standalone.smoke import (
    MAX_WAIT,
    SmokeInputError,
    check_url,
    check_wait,
    run_smoke,
    smoke_command,
)

SECRET = "s3cr3t-P@ss"

# (url, token, a word of the fix the message must name)
REFUSED_URLS = [
    ("", False, "give the OpenFGA HTTP API URL"),
    ("   ", False, "give the OpenFGA HTTP API URL"),
    ("--help", False, "like an option"),
    ("-h", False, "like an option"),
    ("fga.example.com", False, "http:// or https://"),
    ("fga.example.com:8080", False, "http:// or https://"),
    ("localhost:8080", False, "http:// or https://"),
    ("ftp://fga.example.com", False, "http:// or https://"),
    ("file:///etc/passwd", False, "http:// or https://"),
    ("http:/fga.example.com", False, "http:// or https://"),
    ("http://", False, "no valid host"),
    ("http://:8080", False, "no valid host"),
    ("http://fga.example.com:0", False, "1-65535"),
    ("http://fga.example.com:", False, "1-65535"),
    ("http://fga.example.com:99999", False, "does not parse"),
    ("http://fga.example.com:80a", False, "does not parse"),
    ("http://[::1", False, "does not parse"),
    ("http://fga..example.com", False, "no valid host"),
    ("http://fga_example.com", False, "no valid host"),
    ("http://fga.example.com/a b", False, "spaces"),
    ("http://fga.example.com\n", False, "newline"),
    (" http://fga.example.com", False, "spaces"),
    ("http://fga.example.com/x\"y", False, "percent-encoding"),
    ("http://fga.example.com/?x=1", False, "--token env://FGA_TOKEN"),
    ("http://fga.example.com/#frag", False, "scheme://host"),
    ("https://fga.example.com?token=" + SECRET, False, "--token env://FGA_TOKEN"),
    (f"http://admin:{SECRET}@fga.example.com", False, "--token env://FGA_TOKEN"),
    (f"https://admin:{SECRET}@fga.example.com", True, "--token env://FGA_TOKEN"),
    (f"https://{SECRET}@fga.example.com", False, "remove them"),
    ("http://fga.example.com", True, "use https://"),
    ("http://8.8.8.8:8080", True, "use https://"),
    ("http://fga.example.com.", True, "use https://"),
    ("http://[2001:4860::8888]:8080", True, "use https://"),
    ("http://x" * 700, False, "2048"),
]


@pytest.mark.parametrize(("url", "token", "fix"), REFUSED_URLS)
def test_bad_urls_are_refused_with_the_fix_and_no_secret(url: str, token: bool, fix: str) -> None:
    for check in (lambda: check_url(url, token=token), lambda: smoke_command(url, token=token)):
        with pytest.raises(SmokeInputError) as err:
            check()
        text = str(err.value) + repr(err.value)
        assert fix in text
        assert SECRET not in text and "s3cr3t-P%40ss" not in text


@pytest.mark.parametrize(
    ("url", "token"),
    [
        ("https://fga.example.com", True),
        ("https://fga.example.com:8443/base/", True),
        ("http://fga.example.com", False),  # no key: nothing to leak
        ("http://openfga:8080", True),  # a Dagger service alias
        ("http://127.0.0.1:8080", True),
        ("http://[::1]:8080", True),
        ("http://localhost:8080", True),
        ("http://10.0.0.5:8080", True),
        ("http://192.168.1.10", True),
        ("http://100.64.0.9", True),
        ("http://fga.internal:8080", True),
        ("http://openfga.openfga.svc.cluster.local:8080", True),
    ],
)
def test_good_urls_pass(url: str, token: bool) -> None:
    assert check_url(url, token=token) == url
    assert smoke_command(url, token=token)[2] == f"--url={url}"


@pytest.mark.parametrize(
    "wait", [-1, 1e9, MAX_WAIT + 1, float("nan"), float("inf"), True, "30"]
)
def test_bad_waits_are_refused_before_anything_runs(wait: object) -> None:
    with pytest.raises(SmokeInputError, match=r"--wait .* out of range: give seconds from 0"):
        smoke_command("https://fga.example.com", wait=wait)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, -5, 301, float("nan"), float("inf")])
def test_bad_timeouts_are_refused(timeout: float) -> None:
    with pytest.raises(SmokeInputError, match=r"--timeout .* out of range: give seconds above 0"):
        smoke_command("https://fga.example.com", timeout=timeout)


@pytest.mark.parametrize("wait", [0, 0.5, 30, MAX_WAIT])
def test_waits_in_range(wait: float) -> None:
    assert check_wait(wait) == wait


def test_the_command_uses_one_word_per_option() -> None:
    # --url=VALUE: argparse can never read the value as an option of its own.
    assert smoke_command("http://openfga:8080", wait=30, timeout=10) == [
        "python3", "/smoke/smoke.py", "--url=http://openfga:8080", "--wait=30", "--timeout=10",
    ]  # fmt: skip


def test_run_smoke_checks_too_before_sending_anything() -> None:
    with pytest.raises(SmokeInputError, match="use https://"):
        asyncio.run(run_smoke("http://fga.example.com", "a-key"))
    with pytest.raises(SmokeInputError, match="--wait"):
        asyncio.run(run_smoke("http://127.0.0.1:1", None, health_wait=1e9))


@pytest.mark.parametrize(
    ("args", "env", "fix"),
    [
        (["--url="], {}, "give the OpenFGA HTTP API URL"),
        (["--url=fga.example.com"], {}, "http:// or https://"),
        (["--url=http://fga.example.com", "--wait=1e9"], {}, "--wait 1e+09 is out of range"),
        (["--url=http://fga.example.com"], {"FGA_TOKEN": SECRET}, "use https://"),
        ([f"--url=http://u:{SECRET}@fga.example.com"], {}, "--token env://FGA_TOKEN"),
    ],
)
def test_the_lone_script_refuses_on_its_own(
    tmp_path: Path, args: list[str], env: dict[str, str], fix: str
) -> None:
    script = tmp_path / "smoke.py"
    script.write_text(Path(smoke.__file__).read_text())
    ran = subprocess.run(
        [sys.executable, "-I", str(script), *args], env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.startswith("REFUSED: ") and fix in ran.stderr
    assert SECRET not in ran.stdout + ran.stderr
