"""A refused request body's validation error (msgspec's terse text) as a sentence a person reads."""

from __future__ import annotations

import re

KINDS = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "object": "a JSON object",
    "array": "a list",
    "null": "nothing (null)",
}
_AT = r"(?: - at `\$\.?(?P<field>[^`]*)`)?$"
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Expected `str` of length >= (?P<n>\d+)" + _AT), "{field} must have at least {n} characters."),
    (re.compile(r"^Expected `str` of length <= (?P<n>\d+)" + _AT), "{field} must have at most {n} characters."),
    (re.compile(r"^Expected `(?:int|float)` >= (?P<n>[-\d.e]+)" + _AT), "{field} must be at least {n}."),
    (re.compile(r"^Expected `(?:int|float)` <= (?P<n>[-\d.e]+)" + _AT), "{field} must be at most {n}."),
    (re.compile(r"^Expected `(?:int|float)` > (?P<n>[-\d.e]+)" + _AT), "{field} must be more than {n}."),
    (re.compile(r"^Expected `(?:int|float)` < (?P<n>[-\d.e]+)" + _AT), "{field} must be less than {n}."),
    (re.compile(r"^Expected `(?P<want>\w+)`, got `(?P<got>\w+)`" + _AT), "{field} must be {want}, not {got}."),
    (re.compile(r"^Object missing required field `(?P<name>[^`]+)`" + _AT), "The field {name} is required."),
    (re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`" + _AT), "There is no field called {name}."),
]


def explain(message: str) -> str:
    """msgspec's "Expected `str` of length >= 8 - at `$.password`" as "password must have at least 8
    characters."; a message no rule knows is still turned into one sentence."""
    for pattern, template in _RULES:
        found = pattern.match(message)
        if found is None:
            continue
        parts = {key: value for key, value in found.groupdict().items() if value is not None}
        field = parts.pop("field", "")
        subject = f"The field {field}" if field else "The request body"
        for key in ("want", "got"):
            if key in parts:
                parts[key] = KINDS.get(parts[key], parts[key])
        return template.format(field=subject, **parts)
    return f"The request is not valid: {message.rstrip('.')}."
