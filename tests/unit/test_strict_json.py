"""strict_json (api/routing.py) answers exactly as json.loads with the duplicate-key check.

Its fast path (orjson, taken only when the text shows no key can repeat) must never change an
answer: same value, or the same kind of error, for any text.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dompet.api.routing import _refuse_duplicate_keys, strict_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
)
keys = st.sampled_from(["amount", "remarks", "a", "é", 'q"', "x\\y", "\x00"]) | st.text(max_size=4)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)


def reference(text: bytes) -> tuple[str, Any]:
    try:
        return "ok", json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError ...
        return "error", type(exc).__name__


def candidate(text: bytes) -> tuple[str, Any]:
    try:
        return "ok", strict_json(text)
    except (ValueError, RecursionError) as exc:
        return "error", type(exc).__name__


def same(one: Any, other: Any) -> bool:
    if isinstance(one, float) and isinstance(other, float):
        return (math.isnan(one) and math.isnan(other)) or one == other
    if type(one) is not type(other):
        return False
    if isinstance(one, dict):
        return one.keys() == other.keys() and all(same(one[k], other[k]) for k in one)
    if isinstance(one, list):
        return len(one) == len(other) and all(same(a, b) for a, b in zip(one, other, strict=True))
    return bool(one == other)


def duplicated(text: str) -> str:
    """The text with its first key written twice (when it has an object)."""
    start = text.find('{"')
    if start < 0:
        return text
    end = text.find(",", start)
    end = text.find("}", start) if end < 0 else end
    member = text[start + 1 : end]
    return text[: start + 1] + member + ", " + text[start + 1 :]


@settings(max_examples=400, deadline=None)
@given(values, st.booleans(), st.booleans())
def test_same_answer_for_json_texts(value: Any, ascii_only: bool, repeat_a_key: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    if repeat_a_key:
        text = duplicated(text)
    raw = text.encode("utf-8", "surrogatepass")
    expected, got = reference(raw), candidate(raw)
    assert expected[0] == got[0], (raw, expected, got)
    assert same(expected[1], got[1]), (raw, expected, got)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40) | st.sampled_from([b"NaN", b'{"a": Infinity}', b"[1e999]"]))
def test_same_answer_for_any_bytes(raw: bytes) -> None:
    expected, got = reference(raw), candidate(raw)
    assert expected[0] == got[0], (raw, expected, got)
    assert same(expected[1], got[1]), (raw, expected, got)


def test_repeated_keys_are_refused_wherever_they_are() -> None:
    for text in (
        b'{"amount": 1, "amount": 2}',
        b'{"a": {"b": 1, "b": 2}}',
        b'[{"a": 1}, {"c": {"d": [1, {"e": 1, "e": 1}]}}]',
        b'{"am\\u006funt": 1, "amount": 2}',
    ):
        assert reference(text)[0] == "error"
        assert candidate(text) == reference(text), text
    assert strict_json(b'{"remarks": "amount", "amount": 1}') == {"remarks": "amount", "amount": 1}
