"""Bad names and passwords: the shell rules (initdb.d/00-openfga-env.sh, run in
the container) and the Python rules (postgres.py, run at plan time) give the
same verdict and the same message, under dash (our start script) and under
bash with the official entrypoint's ``set -Eeo pipefail``.

The start script's refusal before anything exists is proven against the real
start script in test_postgres_server.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from openfga_release.recipes import postgres as pg

REPO = Path(__file__).resolve().parents[2]
ENV_SH = REPO / "images" / "postgres" / "initdb.d" / "00-openfga-env.sh"
GOOD = {
    "POSTGRES_MIGRATOR_PASSWORD": "Mig-r@tor:pw/1%x?k",
    "POSTGRES_APP_PASSWORD": "App#s3cret:p@ss/w%rd",
    "POSTGRES_READONLY_PASSWORD": "R3ad-0nly?p@ss:w/%d",
}
SHELLS = {
    "dash": ["dash", "-c", 'set -eu; . "$0"; env'],
    "bash-official": ["bash", "-c", 'set -Eeo pipefail; . "$0"; env'],
}

CASES = {
    "defaults": {},
    "custom names": {"POSTGRES_OPENFGA_DB": "authz", "POSTGRES_APP_ROLE": "authz_rw"},
    "unicode password": {"POSTGRES_APP_PASSWORD": "pässwörd-Ünïcode"},
    "empty password": {"POSTGRES_APP_PASSWORD": ""},
    "short password": {"POSTGRES_APP_PASSWORD": "Abc!12345"},
    "low variety": {"POSTGRES_MIGRATOR_PASSWORD": "abababababab1212"},
    "contains the role": {"POSTGRES_APP_PASSWORD": "xx-openfga_app-yy!9"},
    "contains the database": {"POSTGRES_READONLY_PASSWORD": "My-OpenFGA-pass-99"},
    "control character": {"POSTGRES_APP_PASSWORD": "abcdefgh\tijkl9Z"},
    "1024 bytes is fine": {"POSTGRES_APP_PASSWORD": "Ab1!xY-z" * 128},
    "1025 bytes": {"POSTGRES_APP_PASSWORD": "Ab1!xY-z" * 128 + "q"},
    "100 KiB password": {"POSTGRES_MIGRATOR_PASSWORD": "Ab1!xY-z" * 12800},
    "shared password": {"POSTGRES_APP_PASSWORD": GOOD["POSTGRES_MIGRATOR_PASSWORD"]},
    "uppercase name": {"POSTGRES_APP_ROLE": "OpenFGA_App"},
    "leading digit": {"POSTGRES_OWNER_ROLE": "1owner"},
    "dash in name": {"POSTGRES_OPENFGA_DB": "open-fga"},
    "quote in name": {"POSTGRES_APP_ROLE": "app'; DROP ROLE x; --"},
    "pg_ prefix": {"POSTGRES_READONLY_ROLE": "pg_reader"},
    "reserved name": {"POSTGRES_MIGRATOR_ROLE": "public"},
    "reserved database": {"POSTGRES_OPENFGA_DB": "postgres"},
    "too long": {"POSTGRES_APP_ROLE": "a" * 64},
    "63 is fine": {"POSTGRES_APP_ROLE": "a" * 63},
    "duplicate names": {"POSTGRES_APP_ROLE": "openfga_readonly"},
    "database named like a role": {"POSTGRES_OPENFGA_DB": "openfga_owner"},
}


def python_verdict(env: dict[str, str]) -> str | None:
    try:
        names = pg.Names(**{
            kind: env[var] for kind, var in pg.NAME_ENV.items() if env.get(var)
        })
        pg.check_passwords(
            {kind: env.get(var, "") for kind, var in pg.PASSWORD_ENV.items()}, names
        )
    except pg.PostgresConfigError as exc:
        return str(exc)
    return None


def shell_run(shell: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SHELLS[shell], str(ENV_SH)], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True)


def shell_verdict(shell: str, env: dict[str, str]) -> str | None:
    proc = shell_run(shell, env)
    if proc.returncode == 0:
        return None
    prefix = "openfga init: error: "
    assert proc.stderr.startswith(prefix), proc.stderr
    return proc.stderr[len(prefix):].rstrip("\n")


@pytest.mark.parametrize("shell", sorted(SHELLS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_shell_and_python_agree(case: str, shell: str) -> None:
    env = {**GOOD, **CASES[case]}
    expected = python_verdict(env)
    assert shell_verdict(shell, env) == expected
    ok_cases = {"defaults", "custom names", "unicode password", "63 is fine", "1024 bytes is fine"}
    assert (expected is None) == (case in ok_cases), expected


@pytest.mark.parametrize("case", sorted(set(CASES) - {"defaults", "custom names",
                                                       "unicode password", "63 is fine",
                                                       "1024 bytes is fine"}))
def test_messages_name_the_problem_never_the_password(case: str) -> None:
    env = {**GOOD, **CASES[case]}
    msg = python_verdict(env)
    assert msg is not None
    assert any(var in msg for var in [*pg.NAME_ENV.values(), *pg.PASSWORD_ENV.values()]) or \
        "used twice" in msg
    for var, value in CASES[case].items():
        if "PASSWORD" in var and value:
            assert value not in msg
    assert any(fix in msg for fix in ("openssl rand", "lowercase letters", "choose another",
                                      "distinct names", "its own password"))


def test_missing_passwords_are_named() -> None:
    msg = shell_verdict("dash", {})
    assert msg is not None and msg.startswith("POSTGRES_MIGRATOR_PASSWORD is empty")
    assert msg == python_verdict({})


def test_exports_defaults_and_values() -> None:
    proc = shell_run("dash", GOOD)
    assert proc.returncode == 0, proc.stderr
    exported = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    for kind, var in pg.NAME_ENV.items():
        assert exported[var] == (pg.DEFAULT_DATABASE if kind == "database"
                                 else pg.DEFAULT_ROLES[kind])
    for var, value in GOOD.items():
        assert exported[var] == value


def test_file_variants_are_read_and_unset(tmp_path: Path) -> None:
    env = dict(GOOD)
    for var in list(env):
        f = tmp_path / var
        f.write_text(env.pop(var) + "\n\n")  # trailing newlines are dropped
        env[var + "_FILE"] = str(f)
    proc = shell_run("dash", env)
    assert proc.returncode == 0, proc.stderr
    exported = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    for var, value in GOOD.items():
        assert exported[var] == value
        assert var + "_FILE" not in exported


def test_value_and_file_together_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("Another-g00d-password")
    msg = shell_verdict("dash", {**GOOD, "POSTGRES_APP_PASSWORD_FILE": str(f)})
    assert msg == ("both POSTGRES_APP_PASSWORD and POSTGRES_APP_PASSWORD_FILE are set: "
                   "set only one of them")


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    env = {k: v for k, v in GOOD.items() if k != "POSTGRES_APP_PASSWORD"}
    missing = tmp_path / "nope"
    msg = shell_verdict("dash", {**env, "POSTGRES_APP_PASSWORD_FILE": str(missing)})
    assert msg == f"POSTGRES_APP_PASSWORD_FILE names {missing}, which is not a readable file"


def test_empty_name_is_refused_at_plan_time() -> None:
    # In the shell an empty variable means "use the default" (like unset);
    # an explicit empty Dagger argument is a mistake.
    with pytest.raises(pg.PostgresConfigError, match="POSTGRES_APP_ROLE is empty"):
        pg.Names(app="")


def test_a_password_too_long_is_named_by_its_variable() -> None:
    env = {**GOOD, "POSTGRES_MIGRATOR_PASSWORD": "Ab1!xY-z" * 12800}
    assert python_verdict(env) == shell_verdict("dash", env) == (
        "POSTGRES_MIGRATOR_PASSWORD is 102400 bytes long; at most 1024 are allowed (a longer "
        "value is usually the wrong file or variable); generate one with: openssl rand -base64 24"
    )
