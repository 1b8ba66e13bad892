"""JSON from outside (data files, request bodies), parsed with limits, so that hostile input is a
clear error naming the field rather than a traceback later on:

- nesting deeper than MAX_DEPTH levels: json's C decoder recurses once per level and dies with a
  RecursionError near a thousand; pydantic, json.dumps and any walk over the value recurse too;
- integers of more than MAX_INT_DIGITS digits: Python refuses to convert them (a ValueError from
  deep inside json), and str() of the value fails the same way later;
- numbers that overflow to infinity (`1e999999`), and NaN / Infinity, which are JavaScript, not
  JSON: they would reach a model or a database as inf;
- strings holding a lone UTF-16 surrogate (`"\\ud800"`): a valid JSON escape, but not Unicode text,
  so encoding it as UTF-8 fails wherever it goes next (the tokenizer, the store, the response).

`loads(text)` raises json.JSONDecodeError for what is not JSON at all (as json.loads does) and
JSONValueError, naming the field (`messages[0].content`), for JSON that breaks one of the limits.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from tunelab.errors import InvalidInputError

MAX_DEPTH = 64
# Python's own limit on int <-> str conversion (sys.get_int_max_str_digits' default): beyond it,
# int() and str() raise, so such a number cannot be read, logged or written back.
MAX_INT_DIGITS = 4300
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONValueError(InvalidInputError):
    """Well-formed JSON that tunelab refuses (see the module docstring); `field` names where."""

    def __init__(self, problem: str, field: str | None = None, *, hint: str | None = None):
        self.problem = problem
        self.field = field
        super().__init__(f"field `{field}`: {problem}" if field else problem, hint=hint)


class _Refused:
    """What the decoder's hooks put in place of a refused number, so that the walk after decoding
    can say which field held it (the hooks themselves do not know)."""

    __slots__ = ("problem",)

    def __init__(self, problem: str):
        self.problem = problem


def _int(text: str) -> int | _Refused:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INT_DIGITS:
        return _Refused(f"an integer of {digits} digits (at most {MAX_INT_DIGITS} are accepted); "
                        "write it as a string if it is an id")
    return int(text)


def _float(text: str) -> float | _Refused:
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= 24 else text[:20] + "…"
        return _Refused(f"the number {shown} is out of range (beyond ±1.8e308)")
    return value


def _constant(text: str) -> _Refused:
    return _Refused(f"{text} is not a JSON number (NaN and Infinity are JavaScript, not JSON); send a number or null")


def decoder() -> json.JSONDecoder:
    """A decoder with the number hooks; values it returns must go through `check`."""
    return json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


def field_name(path: Sequence[str | int]) -> str | None:
    """("messages", 0, "content") -> "messages[0].content"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise JSONValueError for the first part of a decoded value (in document order) that breaks
    a limit. Iterative, so that the check itself cannot hit the recursion limit."""
    stack: list[tuple[Any, tuple, int]] = [(value, (), 0)]
    while stack:
        obj, path, depth = stack.pop()
        if isinstance(obj, str):
            found = _SURROGATE.search(obj)
            if found:
                raise JSONValueError(
                    f"holds a lone UTF-16 surrogate (\\u{ord(found.group()):04x}) at character {found.start()}, "
                    "which is not Unicode text; a surrogate escape must be half of a pair (\\ud83d\\ude00), "
                    "or write the text as UTF-8", field_name(path))
        elif isinstance(obj, _Refused):
            raise JSONValueError(obj.problem, field_name(path))
        elif isinstance(obj, (dict, list)):
            if depth >= max_depth:
                raise JSONValueError(f"nested more than {max_depth} levels deep; send plain values (text, "
                                     "numbers) or shallow lists and objects", field_name(path[:1]))
            if isinstance(obj, dict):
                children = []
                for key, child in obj.items():
                    if _SURROGATE.search(key):
                        raise JSONValueError("a key holds a lone UTF-16 surrogate, which is not Unicode text",
                                             field_name(path))
                    children.append((child, path + (key,), depth + 1))
            else:
                children = [(child, path + (i,), depth + 1) for i, child in enumerate(obj)]
            stack.extend(reversed(children))


def decode_bytes(data: bytes) -> str:
    """Bytes as text, in the encoding JSON allows (UTF-8, or UTF-16/32 told by the first bytes, as
    json.loads detects it); JSONValueError when they do not decode."""
    encoding = json.detect_encoding(data)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise JSONValueError(f"not valid {encoding.upper()}: the byte 0x{data[exc.start]:02x} at offset "
                             f"{exc.start} cannot be decoded ({exc.reason}); send JSON encoded as UTF-8") from None


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads with the limits of this module."""
    text = decode_bytes(bytes(data)) if isinstance(data, (bytes, bytearray)) else data
    try:
        value = decoder().decode(text)
    except RecursionError:
        raise JSONValueError(f"nested more than {max_depth} levels deep; send plain values (text, numbers) "
                             "or shallow lists and objects") from None
    check(value, max_depth=max_depth)
    return value
