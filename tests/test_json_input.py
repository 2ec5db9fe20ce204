"""A request's JSON, and with --check-output a guest's, is checked by json's C
scanner alone: it must accept and refuse exactly what json.loads does,
whatever the text."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wasmtube_server.calls import _check_json_output, _json
from wasmtube_server.errors import GuestOutputError, InvalidArgument

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


# _check_json_output names the function in its message, nothing more.
FUNCTION: Any = SimpleNamespace(name="f")


def output_accepted(text: str) -> bool:
    try:
        _check_json_output(FUNCTION, text)
    except GuestOutputError:
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
    assert output_accepted(text) == loads(text)


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


def test_output_refusal_says_why() -> None:
    with pytest.raises(GuestOutputError) as error:
        _check_json_output(FUNCTION, "{} {}")
    assert error.value.message == (
        "function 'f' returned 5 characters that are not JSON: Extra data at character 3: '{} {}'"
    )
