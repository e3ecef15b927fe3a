"""stop_reason / stop_code as one sentence with a fix (recipes/kraftcloud/crash.py)."""

from __future__ import annotations

import errno

from openfga_release.recipes.kraftcloud.crash import Stop, StopCode, explain, is_clean, stop_flags


def test_flags_follow_the_documented_table() -> None:
    assert [stop_flags(v) for v in (28, 15, 13, 7, 3, 1, 0)] == [
        "FUP--", "-UPAK", "-UP-K", "--PAK", "---AK", "----K", "-----"]


def test_stop_code_packing_round_trips() -> None:
    value = StopCode.pack(4, errno=errno.ENOMEM, init_level=6, termtable=True)
    code = StopCode(value)
    assert (code.reason, code.errno, code.init_level, code.termtable) == (4, 12, 6, True)
    assert code.errno_name == "ENOMEM"
    assert value == 0x0C8604


def test_out_of_memory_page_fault_says_memory() -> None:
    s = explain(Stop("openfga-1", 1, StopCode.pack(4, errno=errno.ENOMEM, init_level=6),
                     memory_mb=256))
    assert "ran out of memory" in s and "more memory than 256 MiB" in s


def test_load_crash_243_and_254_say_build_flags() -> None:
    for code in (243, 254):
        s = explain(Stop("openfga-1", 3, 0, exit_code=code, uptime_ms=102))
        assert f"exited {code}" in s and "-buildmode=pie" in s and "CGO_ENABLED=0" in s


def test_kernel_crash_before_the_app_says_image() -> None:
    s = explain(Stop("pg", 1, StopCode.pack(5, init_level=2)))
    assert "segmentation fault" in s and "before the app ran" in s


def test_app_exit_quotes_redacted_log_lines() -> None:
    log = "starting\npanic: postgres://openfga_app:hunter2pw@pg.internal/x refused\n"
    s = explain(Stop("openfga-1", 3, 0, exit_code=2, uptime_ms=9000), log,
                secrets=["hunter2pw"])
    assert "exited with code 2" in s and "panic:" in s and "hunter2pw" not in s


def test_clean_stops_need_no_fix() -> None:
    assert is_clean(Stop("a", 15, 0, exit_code=0))
    assert is_clean(Stop("a", 3, 0, exit_code=0))
    assert not is_clean(Stop("a", 3, 0, exit_code=1))
    assert "nothing to fix" in explain(Stop("a", 7, 0, exit_code=0))
    assert "force-stopped" in explain(Stop("a", 28))
