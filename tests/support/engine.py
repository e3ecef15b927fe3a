"""A fake engine for plan tests: it answers only the awaited leaves.

The module builds its real lazy plan on the real SDK; where a function awaits a
result (an exit code, stdout, a secret's plaintext, the default platform, a
service start/stop), this engine answers from a table of responders keyed by
*command*: the last ``withExec`` of the container asked about, named by
:func:`command_key` (``"openfga migrate"``, ``"smoke.py"``...). A test adds or
replaces responders; nothing grows an if-chain. Every question is recorded in
order (:attr:`FakeEngine.events`, :attr:`FakeEngine.asked`).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagger
import pytest

from tests.support import plan


@dataclass(frozen=True)
class Answer:
    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""


Responder = Callable[[list[str], dagger.Container], Answer]


def command_key(argv: list[str]) -> str:
    """The first two words by base name (``/usr/bin/openfga migrate -x``: ``openfga migrate``);
    a Python script by its file name (``python3 /x/smoke.py``: ``smoke.py``)."""
    names = [posixpath.basename(a) for a in argv]
    if names and names[0].startswith("python") and len(names) > 1:
        return names[1]
    words = [n for n in names[:2] if n and not n.startswith("-")]
    return " ".join(words)


def last_exec(ctr: dagger.Container) -> list[str]:
    execs = [s.args["args"] for s in plan.chain(ctr) if s.name == "withExec"]
    return list(execs[-1]) if execs else []


def expects_any(ctr: dagger.Container) -> bool:
    """The last exec was made with ``expect=ReturnType.ANY`` (any exit code is a result)."""
    execs = [s.args for s in plan.chain(ctr) if s.name == "withExec"]
    expect = execs[-1].get("expect") if execs else None
    return getattr(expect, "value", expect) == dagger.ReturnType.ANY.value


def db_info(revision: int) -> str:
    """What ``openfga migrate`` logs about the revision it found."""
    return json.dumps({"level": "info", "msg": "db info", "current version": revision})


@dataclass
class FakeEngine:
    platform: str = "linux/amd64"
    secrets: dict[str, str] = field(default_factory=dict)  # overrides, by secret name
    responders: dict[str, Responder] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    asked: list[tuple[str, dagger.Container]] = field(default_factory=list)
    _answers: dict[int, Answer] = field(default_factory=dict)

    def respond(self, key: str, responder: Responder) -> FakeEngine:
        self.responders[key] = responder
        return self

    def containers(self, key: str) -> list[dagger.Container]:
        """The containers whose command ``key`` was run, in order."""
        return [ctr for k, ctr in self.asked if k == key]

    def _answer(self, ctr: dagger.Container) -> Answer:
        if id(ctr) not in self._answers:
            argv = last_exec(ctr)
            key = command_key(argv)
            if key not in self.responders:
                raise AssertionError(f"the fake engine has no responder for {key!r} ({argv})")
            self.asked.append((key, ctr))
            self.events.append(key)
            self._answers[id(ctr)] = self.responders[key](argv, ctr)
        return self._answers[id(ctr)]

    def install(self, mp: pytest.MonkeyPatch) -> FakeEngine:
        engine = self

        async def exit_code(ctr: dagger.Container) -> int:
            return engine._answer(ctr).exit_code

        async def stdout(ctr: dagger.Container) -> str:
            answer = engine._answer(ctr)
            if answer.exit_code != 0 and not expects_any(ctr):  # the engine fails the exec
                raise RuntimeError(f"exit code {answer.exit_code}: {answer.stderr}")
            return answer.stdout

        async def stderr(ctr: dagger.Container) -> str:
            return engine._answer(ctr).stderr

        async def plaintext(secret: dagger.Secret) -> str:
            args = plan.chain(secret)[-1].args  # setSecret(name, plaintext)
            return engine.secrets.get(args.get("name", ""), args.get("plaintext", ""))

        async def default_platform(client: Any) -> dagger.Platform:
            return dagger.Platform(engine.platform)

        async def start(service: dagger.Service) -> dagger.Service:
            engine.events.append("start")
            return service

        async def stop(service: dagger.Service, **kw: Any) -> dagger.Service:
            engine.events.append("stop")
            return service

        mp.setattr(dagger.Container, "exit_code", exit_code)
        mp.setattr(dagger.Container, "stdout", stdout)
        mp.setattr(dagger.Container, "stderr", stderr)
        mp.setattr(dagger.Secret, "plaintext", plaintext)
        mp.setattr(dagger.Client, "default_platform", default_platform)
        mp.setattr(dagger.Service, "start", start)
        mp.setattr(dagger.Service, "stop", stop)
        return self
