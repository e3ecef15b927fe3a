"""Go's own rules for reading flags, so the build guards read them as Go does.

- ``go build`` splits the value of ``-ldflags`` with ``cmd/internal/quoted``
  (fields separated by space, tab, CR or LF; a field that *starts* with ``'`` or
  ``"`` runs to the matching quote, with no escapes): :func:`split`, :func:`join`.
- Both the go command and the linker parse flags with Go's ``flag`` package:
  ``-name``, ``--name`` (the same flag), ``-name=value``, ``-name value`` for a
  flag that takes a value; parsing stops at the first non-flag argument or at
  ``--``; a boolean flag's value must be written ``-name=value`` and is read by
  ``strconv.ParseBool``: :func:`parse`.

The guards in :mod:`gobuild` are allow-lists over what these functions return,
so ``--ldflags='-s -w'``, ``-ldflags`` and ``--ldflags`` are one flag to them,
as they are to Go.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InputError

SPACE = " \t\n\r"
TRUE = ("1", "t", "T", "TRUE", "true", "True")  # strconv.ParseBool
FALSE = ("0", "f", "F", "FALSE", "false", "False")


class FlagSyntaxError(InputError):
    """Flags Go itself would not parse."""


def split(text: str) -> list[str]:
    """``cmd/internal/quoted.Split``: how ``go build`` splits ``-ldflags`` and ``-gcflags``."""
    fields: list[str] = []
    i = 0
    while i < len(text):
        if text[i] in SPACE:
            i += 1
            continue
        if text[i] in "'\"":
            quote = text[i]
            end = text.find(quote, i + 1)
            if end == -1:
                raise FlagSyntaxError(
                    f"unterminated {quote} string in {text!r}: close the quote, or drop it "
                    "(Go splits flags on spaces and keeps a quoted field whole, with no escapes)"
                )
            fields.append(text[i + 1 : end])
            i = end + 1
            continue
        end = i
        while end < len(text) and text[end] not in SPACE:
            end += 1
        fields.append(text[i:end])
        i = end
    return fields


def join(args: Iterable[str]) -> str:
    """``cmd/internal/quoted.Join``: the inverse of :func:`split` (quotes a field with spaces)."""
    out = []
    for arg in args:
        space = any(c in SPACE for c in arg)
        single, double = "'" in arg, '"' in arg
        if not (space or single or double):
            out.append(arg)
        elif not single:
            out.append(f"'{arg}'")
        elif not double:
            out.append(f'"{arg}"')
        else:
            raise FlagSyntaxError(
                f"{arg!r} holds both single and double quotes: Go cannot pass it as one field"
            )
    return " ".join(out)


@dataclass(frozen=True)
class Flag:
    name: str
    value: str | None  # None: the flag was written without =value
    text: str  # the tokens it came from, for messages

    def normalized(self, takes_value: bool) -> list[str]:
        """The flag as one canonical token list (``-name=value`` or ``-name``)."""
        if self.value is None:
            return [f"-{self.name}"]
        return [f"-{self.name}={self.value}"] if not takes_value else [f"-{self.name}", self.value]


def parse(tokens: list[str], takes_value: Iterable[str]) -> list[Flag]:
    """Read ``tokens`` as Go's flag package does. Flags in ``takes_value`` consume the
    next token when written without ``=``. Anything Go would stop at (``--``, ``-``, a
    non-flag argument) or reject (``---x``, ``-=x``) is an error here: the recipe
    chooses the packages and the output, so nothing may follow the flags."""
    valued = set(takes_value)
    flags: list[Flag] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("-", "--") or not tok.startswith("-"):
            raise FlagSyntaxError(
                f"{tok!r} is not a flag: Go would stop reading flags there and treat the rest as "
                "packages or files, which the recipe chooses; give only flags"
            )
        body = tok[2:] if tok.startswith("--") else tok[1:]
        if not body or body[0] in "-=":
            raise FlagSyntaxError(f"bad flag syntax: {tok!r} (write -name or -name=value)")
        name, eq, value = body.partition("=")
        if eq:
            flags.append(Flag(name, value, tok))
        elif name in valued:
            if i + 1 >= len(tokens):
                raise FlagSyntaxError(f"flag {tok} needs a value: write {tok}=VALUE")
            flags.append(Flag(name, tokens[i + 1], f"{tok} {tokens[i + 1]}"))
            i += 1
        else:
            flags.append(Flag(name, None, tok))
        i += 1
    return flags


def is_true(flag: Flag) -> bool:
    """A boolean flag's value as ParseBool reads it (bare ``-name`` is true)."""
    if flag.value is None or flag.value in TRUE:
        return True
    if flag.value in FALSE:
        return False
    raise FlagSyntaxError(f"{flag.text}: {flag.value!r} is not a boolean (true or false)")
