"""A refused request body's validation error reads as a sentence, naming the field and what it must be."""

from __future__ import annotations

from typing import Annotated

import msgspec
import pytest

from licentia.api.validation_messages import explain


class Body(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=10)]
    count: Annotated[int, msgspec.Meta(ge=0, le=5)] = 1


def _message(data: bytes) -> str:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.json.decode(data, type=Body)
    return str(refused.value)


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        (b'{"password": "short"}', "The field password must have at least 8 characters."),
        (b'{"password": "much-too-long"}', "The field password must have at most 10 characters."),
        (b"{}", "The field password is required."),
        (b'{"password": "longenough", "count": "x"}', "The field count must be a whole number, not text."),
        (b'{"password": "longenough", "count": 9}', "The field count must be at most 5."),
        (b'{"password": "longenough", "count": -1}', "The field count must be at least 0."),
        (b'{"password": "longenough", "other": 1}', "There is no field called other."),
        (b"[1]", "The request body must be a JSON object, not a list."),
    ],
)
def test_a_validation_error_is_explained_in_a_sentence(data: bytes, sentence: str) -> None:
    assert explain(_message(data)) == sentence


def test_an_unknown_validation_error_still_reads_as_one_sentence() -> None:
    assert explain("Something new happened") == "The request is not valid: Something new happened."
