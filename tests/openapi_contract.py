"""Checks a real answer against the served OpenAPI document: its status, content type and body."""

from __future__ import annotations

import re
from typing import Any

import httpx
from openapi_schema_validator import OAS31Validator

Operation = tuple[str, str]  # (method, path template)


def served_document(url: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/openapi.json", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def operation_of(document: dict[str, Any], request: httpx.Request) -> Operation:
    path = request.url.path
    for template in document["paths"]:
        if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", template), path):
            return request.method.lower(), template
    raise AssertionError(f"{request.method} {path} is in no path of the document")


def contract_problems(document: dict[str, Any], answer: httpx.Response) -> list[str]:
    """What does not match the document in this answer (empty when it matches)."""
    method, template = operation_of(document, answer.request)
    operation = document["paths"][template].get(method)
    where = f"{method.upper()} {template} answered {answer.status_code}"
    if operation is None:
        return [f"{where}: the document has no such operation"]
    declared = operation["responses"].get(str(answer.status_code))
    if declared is None:
        return [f"{where}: status not declared (declared: {sorted(operation['responses'])})"]
    media_type = answer.headers.get("content-type", "").split(";")[0]
    if media_type not in declared.get("content", {}):
        return [f"{where}: content type {media_type} not declared ({sorted(declared.get('content', {}))})"]
    if media_type != "application/json":
        return []
    schema = declared["content"][media_type]["schema"]
    validator = OAS31Validator({**schema, "components": document["components"]})
    return [f"{where}: {'/'.join(map(str, e.path))}: {e.message[:200]}" for e in validator.iter_errors(answer.json())]
