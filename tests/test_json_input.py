"""A request's JSON is checked by json's C scanner alone: it must accept and
refuse exactly what json.loads does, whatever the text."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wasmtube_server.calls import _json
from wasmtube_server.errors import InvalidArgument

# Text made mostly of JSON's own characters, so that many samples are valid,
# many almost valid, and whitespace lands before, between and after values.
json_ish = st.text(alphabet=st.sampled_from(' \t\n\r\u00a0{}[],:"\\0123456789.eE+-truefalsnNIy'))
values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


def accepts(text: str) -> bool:
    try:
        _json(text)
    except InvalidArgument:
        return False
    return True


def loads(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


@settings(max_examples=3000, deadline=None)
@given(json_ish)
@example("")
@example(" {} ")
@example("{}\u00a0")
@example("1 2")
@example("NaN")
@example("[" * 5000 + "]" * 5000)
def test_same_verdict_as_json_loads(text: str) -> None:
    assert accepts(text) == loads(text)


@settings(max_examples=500, deadline=None)
@given(values, st.sampled_from(["", " ", "\n", "\t \r\n"]))
def test_every_serialised_value_is_accepted(value: object, padding: str) -> None:
    text = padding + json.dumps(value) + padding
    assert accepts(text)
    assert _json(text) == text.encode("utf-8")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{'a': 1}", "json is not valid JSON: Expecting property name enclosed in double quotes"),
        ("{} {}", "json is not valid JSON: Extra data at line 1 column 4"),
        ("", "json is not valid JSON: Expecting value at line 1 column 1"),
        ("[" * 5000, "json nests arrays and objects too deeply to be checked"),
    ],
)
def test_refusals_say_why(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        _json(text)
    assert error.value.message.startswith(message)
