"""images/postgres and the Kraftfile, read as files; sizing and validation rules.

Pure logic: no server. What the server does with these files is proven in
test_postgres_server.py.
"""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from openfga_release.recipes import postgres as pg
from openfga_release.recipes.refs import ImageRefError

PG_MODULE = "openfga_release.recipes.postgres"

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "images" / "postgres"


def conf_settings(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip("'")
    return out


def hba_rules() -> list[list[str]]:
    rules = []
    for line in (IMAGE / "pg_hba.conf").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            rules.append(line.split())
    return rules


# ------------------------------------------------------------------ sizing

def test_checked_in_memory_conf_is_the_renderers_1gib_output() -> None:
    assert (IMAGE / "memory.conf").read_text() == pg.render_memory_conf()


def test_1gib_proportions() -> None:
    s = pg.size_memory("1GiB")
    assert s.as_conf() == {
        "max_connections": "50",
        "shared_buffers": "256MB",  # 25 %
        "effective_cache_size": "512MB",  # 50 %
        "work_mem": "5MB",
        "maintenance_work_mem": "64MB",
        "wal_buffers": "8MB",
    }
    assert s.peak_mib() <= 1024


@pytest.mark.parametrize(
    ("memory", "shared", "cache"),
    [("4GiB", "1024MB", "2048MB"), ("2048", "512MB", "1024MB"), ("768Mi", "192MB", "384MB")],
)
def test_other_sizes_keep_the_proportions(memory: str, shared: str, cache: str) -> None:
    conf = pg.size_memory(memory).as_conf()
    assert (conf["shared_buffers"], conf["effective_cache_size"]) == (shared, cache)


def test_wal_buffers_and_maintenance_are_capped() -> None:
    conf = pg.size_memory("64GiB", max_connections=200).as_conf()
    assert conf["wal_buffers"] == "16MB"
    assert conf["maintenance_work_mem"] == "1024MB"


@pytest.mark.parametrize("value", ["1 TB", "lots", "1.5GiB", "-1", "1KiB", ""])
def test_memory_that_is_not_a_size_is_refused(value: str) -> None:
    with pytest.raises(pg.PostgresConfigError, match="is not a size: write it like"):
        pg.parse_memory(value)


def test_memory_below_the_floor_is_refused() -> None:
    with pytest.raises(pg.PostgresConfigError, match=r"128 MiB is too small.*at least 256 MiB"):
        pg.size_memory("128MiB")


def test_memory_too_small_for_the_connections_names_the_fix() -> None:
    with pytest.raises(pg.PostgresConfigError) as err:
        pg.size_memory("512MiB", max_connections=50)
    msg = str(err.value)
    assert "512 MiB is too small for max_connections=50" in msg
    assert "peak estimate is 524 MiB" in msg
    # The suggested connection count really fits.
    fits = int(re.search(r"max_connections to (\d+)", msg).group(1))  # type: ignore[union-attr]
    assert pg.size_memory("512MiB", max_connections=fits).peak_mib() <= 512
    with pytest.raises(pg.PostgresConfigError):
        pg.size_memory("512MiB", max_connections=fits + 1)


def test_memory_conf_cli() -> None:
    ok = subprocess.run([sys.executable, "-m", PG_MODULE, "memory-conf",
                         "--memory", "2GiB"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == pg.render_memory_conf("2GiB")
    assert "shared_buffers = 512MB" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", PG_MODULE, "memory-conf",
                          "--memory", "100MiB"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert "error: memory 100 MiB is too small for the config" in bad.stderr


def test_unikraft_memory_leaves_room_for_the_rootfs() -> None:
    """On Unikraft the rootfs sits in the instance's RAM: --memory is what is
    left of -M after it and the headroom."""
    assert pg.unikraft_memory_mib("1GiB") == 1024 - pg.ROOTFS_ESTIMATE_MIB - 128 == 640
    assert pg.unikraft_memory_mib(2048, "300MiB") == 2048 - 300 - 128
    with pytest.raises(pg.PostgresConfigError, match="give the instance at least 640 MiB"):
        pg.unikraft_memory_mib("512MiB")
    with pytest.raises(pg.PostgresConfigError, match="rootfs size 'big' is not a size"):
        pg.unikraft_memory_mib("1GiB", "big")
    with pytest.raises(pg.PostgresConfigError, match="too small for max_connections=200"):
        pg.unikraft_memory_mib("1GiB", max_connections=200)


def test_unikraft_memory_cli() -> None:
    ok = subprocess.run([sys.executable, "-m", PG_MODULE, "unikraft-memory",
                         "--instance-memory", "2GiB", "--rootfs-size", "280MiB"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == f"{2048 - 280 - 128}MiB\n"
    bad = subprocess.run([sys.executable, "-m", PG_MODULE, "unikraft-memory",
                          "--instance-memory", "256MiB"], capture_output=True, text=True)
    assert bad.returncode == 2 and "give the instance at least" in bad.stderr


def test_documented_unikraft_sizes_follow_the_rule() -> None:
    """The Kraftfile's and README's "-M N -> --memory X" pairs are what the rule
    gives with the rootfs estimate, and the deploy commands use such a pair."""
    kraftfile = (REPO / "kraftfiles" / "postgres" / "Kraftfile").read_text()
    readme = (IMAGE / "README.md").read_text()
    for text in (kraftfile, readme):
        pairs = re.findall(r"-M (\d+)`? (?:->|→) `?--memory (\d+)MiB", text)
        assert len(pairs) >= 2, text[:200]
        for instance, memory in pairs:
            assert pg.unikraft_memory_mib(int(instance)) == int(memory)
    deploy_m = set(re.findall(r"kraft cloud deploy .*?-M (\d+)", kraftfile))
    built = re.findall(r"postgres --memory (\d+)MiB rootfs", kraftfile)
    assert deploy_m == {"1024"} and built == ["640"]


# ------------------------------------------------------------ config files

def test_postgresql_conf_settings() -> None:
    conf = conf_settings(IMAGE / "postgresql.conf")
    expected = {
        "password_encryption": "scram-sha-256",
        "shared_preload_libraries": "pg_stat_statements",
        "random_page_cost": "1.1",
        "checkpoint_completion_target": "0.9",
        "autovacuum": "on",
        "log_min_duration_statement": "500ms",
        "log_statement": "none",
        "ssl": "off",  # turned on by the start script when a certificate exists
        "ssl_min_protocol_version": "TLSv1.2",
        "listen_addresses": "*",
        "unix_socket_permissions": "0700",
        "include": "memory.conf",
    }
    assert {k: conf.get(k) for k in expected} == expected
    # Memory settings live only in memory.conf, so --memory decides them.
    memory_keys = set(pg.size_memory().as_conf())
    assert memory_keys.isdisjoint(conf)
    assert set(conf_settings(IMAGE / "memory.conf")) == memory_keys


def test_pg_hba_network_is_tls_and_scram_only() -> None:
    rules = hba_rules()
    network = [r for r in rules if r[0].startswith("host")]
    accepting = [r for r in network if r[-1] != "reject"]
    assert accepting, "some network login must be possible"
    for rule in accepting:
        assert rule[0] == "hostssl", rule
        assert rule[-1] == "scram-sha-256", rule
        assert rule[2] != "postgres", rule
    methods = {r[-1] for r in rules} | {r[4] for r in rules if r[0] == "local" and len(r) > 4}
    assert not methods & {"trust", "md5", "password", "ident"}
    # hostnossl and the superuser are refused before any accepting line.
    first_accept = rules.index(accepting[0])
    refused_first = [r for r in rules[:first_accept] if r[-1] == "reject"]
    assert {"hostnossl"} <= {r[0] for r in refused_first}
    assert any(r[2] == "postgres" for r in refused_first if r[0] == "host")


def test_pg_hba_local_socket_is_only_for_the_superuser() -> None:
    local = [r for r in hba_rules() if r[0] == "local"]
    assert local[0][:4] == ["local", "all", "postgres", "peer"]
    assert local[0][4] == "map=superuser"
    assert local[1] == ["local", "all", "all", "reject"]
    ident = conf_settings_ident()
    assert ident == [["superuser", "postgres", "postgres"], ["superuser", "root", "postgres"]]


def conf_settings_ident() -> list[list[str]]:
    lines = (IMAGE / "pg_ident.conf").read_text().splitlines()
    return [ln.split() for ln in (x.split("#", 1)[0].strip() for x in lines) if ln]


def test_initdb_dir_layout_follows_the_official_runner() -> None:
    files = sorted(p.name for p in (IMAGE / "initdb.d").iterdir())
    assert files == ["00-openfga-env.sh", "10-openfga.sql"]
    assert files == list(pg.INIT_FILES)  # what the pipeline copies, one by one
    # Not executable: the official runner *sources* it, so its exports reach psql.
    env_sh = IMAGE / "initdb.d" / "00-openfga-env.sh"
    assert not env_sh.stat().st_mode & 0o111
    assert (IMAGE / pg.START_SCRIPT).stat().st_mode & stat.S_IXUSR


def test_no_password_in_the_repository_files() -> None:
    """Passwords come from the environment: no file sets one."""
    for path in [*IMAGE.rglob("*"), *(REPO / "kraftfiles" / "postgres").rglob("*")]:
        if path.is_file():
            text = path.read_text()
            for var in pg.PASSWORD_ENV.values():
                assert not re.search(rf"{var}\s*[:=]\s*[^\s$'\"]", text), (path, var)
    sql = (IMAGE / "initdb.d" / "10-openfga.sql").read_text()
    assert re.findall(r"\bPASSWORD\s+(\S+)", sql) == [
        ":'migrator_password';", ":'app_password';", ":'readonly_password';",
    ]


def test_shell_scripts_parse_with_dash_and_bash() -> None:
    for script in (IMAGE / pg.START_SCRIPT, IMAGE / "initdb.d" / "00-openfga-env.sh"):
        for shell in ("dash", "bash"):
            subprocess.run([shell, "-n", str(script)], check=True)


# --------------------------------------------------------------- Kraftfile

def test_kraftfile() -> None:
    kraft = yaml.safe_load((REPO / "kraftfiles" / "postgres" / "Kraftfile").read_text())
    assert kraft["spec"] == "v0.6"
    assert kraft["runtime"].startswith("base-compat")
    assert kraft["rootfs"] == "./rootfs"
    assert kraft["cmd"] == ["/bin/sh", pg.ENTRYPOINT]
    assert kraft["env"] == pg.ROOTFS_ENV
    assert kraft["env"]["PGDATA"] == "/volume/postgres"
    assert not [k for k in kraft["env"] if "PASSWORD" in k or "SECRET" in k or "KEY" in k]
    assert kraft["labels"]["cloud.unikraft.v1.instances/scale_to_zero.stateful"] == "true"


# --------------------------------------------------------------- TLS rules

@pytest.mark.parametrize(
    ("mode", "owner", "ok"),
    [
        (0o600, 101, True),
        (0o400, 101, True),
        (0o640, 101, False),
        (0o644, 101, False),
        (0o640, 0, True),
        (0o644, 0, False),
        (0o600, 1234, False),
    ],
)
def test_key_file_rule(mode: int, owner: int, ok: bool) -> None:
    problem = pg.key_file_problem(stat.S_IFREG | mode, owner, server_uid=101)
    assert (problem is None) == ok, problem


def test_key_file_must_be_a_regular_file() -> None:
    assert pg.key_file_problem(stat.S_IFLNK | 0o600, 101, 101) == "the key is not a regular file"


@pytest.mark.parametrize("hosts", [[], ["bad host"], ["-x"], ["a/b"]])
def test_certificate_host_names_are_checked(hosts: list[str]) -> None:
    with pytest.raises(pg.PostgresConfigError):
        pg.tls_commands("/out", "/work", hosts)


def test_tls_commands_name_every_host() -> None:
    cmds = pg.tls_commands("/out", "/work", ["postgres", "127.0.0.1"])
    ext = next(c for c in cmds if c[0] == "sh")
    assert "subjectAltName=DNS:postgres,IP:127.0.0.1" in ext[2]
    outputs = [c[c.index("-out") + 1] for c in cmds if "-out" in c]
    assert "/out/ca.crt" in outputs and "/out/server.crt" in outputs
    assert not any("ca.key" in arg and arg.startswith("/out") for c in cmds for arg in c)


# ------------------------------------------------------------ base image pin

@pytest.mark.parametrize("ref", ["postgres:17.9-bookworm", "postgres:16.10",
                                 "postgres:17.9-bookworm@sha256:" + "a" * 64,
                                 "registry.example/pg/postgres:17.2-trixie"])
def test_pinned_images_pass(ref: str) -> None:
    assert pg.check_image_pinned(ref) == ref


@pytest.mark.parametrize(
    "ref",
    ["postgres:17.9-alpine3.22", "postgres:17.9-alpine", "postgres:17.9-musl",
     "postgres@sha256:" + "a" * 64, "postgres:17.9-bookworm-slim"],
)  # fmt: skip
def test_only_debian_variants_named_by_their_tag_pass(ref: str) -> None:
    with pytest.raises(pg.PostgresConfigError, match="is not a Debian variant named by its tag"):
        pg.check_image_pinned(ref)


@pytest.mark.parametrize("ref", ["postgres", "postgres:latest", "postgres:17",
                                 "postgres:17-bookworm", "postgres:bookworm", "post gres:17.1"])
def test_unpinned_images_are_refused(ref: str) -> None:
    with pytest.raises(ImageRefError, match=r"not pinned|not valid"):
        pg.check_image_pinned(ref)


def test_default_image_is_a_full_postgres_17_bookworm_tag() -> None:
    assert re.fullmatch(r"postgres:17\.\d+-bookworm", pg.POSTGRES_IMAGE)


# ------------------------------------------------------------ bounds (issue 8)


def test_memory_has_an_upper_bound_that_names_the_unit_problem() -> None:
    assert pg.parse_memory(f"{pg.MAX_MEMORY_MIB}MiB") == pg.MAX_MEMORY_MIB
    with pytest.raises(pg.PostgresConfigError, match="check the unit"):
        pg.parse_memory(f"{pg.MAX_MEMORY_MIB + 1}MiB")
    with pytest.raises(pg.PostgresConfigError, match="check the unit"):
        pg.parse_memory("1000000GiB")


def test_max_connections_leaves_room_for_the_reserved_roles_and_one_pool() -> None:
    assert pg.MIN_MAX_CONNECTIONS == 12
    assert pg.size_memory("4GiB", pg.MIN_MAX_CONNECTIONS).max_connections == 12
    assert pg.size_memory("128GiB", pg.MAX_MAX_CONNECTIONS).max_connections == 10000
    for bad in (1, pg.MIN_MAX_CONNECTIONS - 1, pg.MAX_MAX_CONNECTIONS + 1):
        with pytest.raises(pg.PostgresConfigError, match="out of range: use 12 to 10000"):
            pg.size_memory("4GiB", bad)
