"""The template language: logic-free, GOV.UK Notify's syntax.

- ``((name))`` is replaced by the variable ``name``'s value, as text;
- ``((name??text))`` shows ``text`` only when ``name`` was given (and is not empty);
  ``text`` may hold placeholders, but not another optional block.

Nothing else: no expressions, no loops, no code. A value is inserted as it is and
never read as template syntax, so ``((secret))`` inside a value stays literal.
A template is parsed once (``parse``) into literal text, placeholders and optional
blocks; rendering walks that list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
OPEN, CLOSE, IF = "((", "))", "??"


class TemplateSyntaxError(ValueError):
    """A template that does not parse: ``position`` is where (0-based)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position + 1})")
        self.position = position


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Placeholder:
    name: str


@dataclass(frozen=True)
class Block:
    name: str
    body: tuple[Text | Placeholder, ...]


Part = Text | Placeholder | Block


def _name_at(source: str, start: int) -> tuple[str, int]:
    found = NAME.match(source, start)
    if found is None:
        raise TemplateSyntaxError("a variable name (letters, digits, _) must follow ((", start)
    return found.group(0), found.end()


def _parse(source: str, start: int, inside: bool) -> tuple[list[Part], int]:
    parts: list[Part] = []
    buffer: list[str] = []
    i = start
    while i < len(source):
        if source.startswith(CLOSE, i) and inside:
            break
        if not source.startswith(OPEN, i):
            buffer.append(source[i])
            i += 1
            continue
        if buffer:
            parts.append(Text("".join(buffer)))
            buffer = []
        name, i = _name_at(source, i + 2)
        if source.startswith(CLOSE, i):
            parts.append(Placeholder(name))
            i += 2
        elif source.startswith(IF, i):
            if inside:
                raise TemplateSyntaxError("an optional block cannot hold another", i)
            body, i = _parse(source, i + 2, inside=True)
            if not source.startswith(CLOSE, i):
                raise TemplateSyntaxError(f"the optional block ((  {name}??  is not closed", i)
            parts.append(Block(name, tuple(p for p in body if not isinstance(p, Block))))
            i += 2
        else:
            raise TemplateSyntaxError(f"(({name} must end with )) or go on with ??", i)
    if buffer:
        parts.append(Text("".join(buffer)))
    return parts, i


def parse(source: str) -> tuple[Part, ...]:
    """The template's parts; TemplateSyntaxError says what and where."""
    parts, end = _parse(source, 0, inside=False)
    if end != len(source):  # pragma: no cover - the top level consumes everything
        raise TemplateSyntaxError("unexpected ))", end)
    return tuple(parts)


def names(parts: tuple[Part, ...]) -> set[str]:
    """Every variable the parts refer to."""
    found: set[str] = set()
    for part in parts:
        if isinstance(part, Placeholder):
            found.add(part.name)
        elif isinstance(part, Block):
            found.add(part.name)
            found |= names(part.body)
    return found


def render(parts: tuple[Part, ...], values: Mapping[str, str]) -> str:
    """The text, with each placeholder's value (already formatted as text). A placeholder
    without a value renders empty; checking that required ones were given is the caller's
    (``app.content.variables``)."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, Text):
            out.append(part.value)
        elif isinstance(part, Placeholder):
            out.append(values.get(part.name, ""))
        elif values.get(part.name):
            out.append(render(part.body, values))
    return "".join(out)
