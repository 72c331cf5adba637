"""The OpenAPI document, built from the endpoint table, the msgspec body types and each operation's contract
(`licentia.api.contract`): request and response schemas, content types, every status an operation can
answer, and its query parameters."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from licentia import __version__
from licentia.api.contract import CONTRACTS, JSON, STATUS_MEANINGS, Contract, OneOf
from licentia.api.responses import ErrorAnswer
from licentia.api.routing import Endpoint

REF = "#/components/schemas/{name}"
TEXT_SCHEMA = {"type": "string"}


class MissingContract(LookupError):
    """An endpoint whose answers the contract table does not describe."""


def contract_of(endpoint: Endpoint) -> Contract:
    contract = CONTRACTS.get((endpoint.method, endpoint.path))
    if contract is None:
        raise MissingContract(
            f"{endpoint.method} {endpoint.path} has no entry in licentia.api.contract.CONTRACTS; "
            "say what it answers there"
        )
    return contract


def implied_refusals(endpoint: Endpoint, contract: Contract) -> set[int]:
    """The statuses an operation answers because of its kind, whatever it does."""
    statuses = {503}  # storage failing; in a triad, no member active
    if endpoint.body is not None or endpoint.raw_body:
        statuses |= {400, 413, 415, 422}
    if contract.query:
        statuses.add(422)
    if endpoint.role:
        statuses |= {401, 403, 429, 502}  # 502: a triad member could not carry the change to the active one
    elif endpoint.tag == "client" and endpoint.method != "GET":
        statuses |= {307, 403}  # 307: to the active triad member; 403: the access rules deny it
    elif endpoint.tag == "peer":
        statuses |= {400, 403, 413}
    return statuses


def _error_response(status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": STATUS_MEANINGS[status],
        "content": {JSON: {"schema": {"$ref": REF.format(name="ErrorAnswer")}}},
    }
    if status == 307:
        answer["headers"] = {"Location": {"schema": {"type": "string"}, "description": "The active member's URL"}}
    if status in (429, 503):
        answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}}
    return answer


def openapi_document(endpoints: list[Endpoint]) -> dict[str, Any]:
    contracts = {(e.method, e.path): contract_of(e) for e in endpoints}
    body_types = {e.body for e in endpoints if e.body is not None}
    answer_types = {
        t for c in contracts.values() for a in c.answers if a.body is not None
        for t in (a.body.types if isinstance(a.body, OneOf) else (a.body,))
    }
    types = sorted(body_types | answer_types | {ErrorAnswer}, key=repr)
    refs, components = msgspec.json.schema_components(types, ref_template=REF)
    schema_of = dict(zip(types, refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        contract = contracts[(endpoint.method, endpoint.path)]
        responses: dict[str, Any] = {}
        for answer in contract.answers:
            schema: dict[str, Any]
            if isinstance(answer.body, OneOf):
                schema = {"oneOf": [schema_of[t] for t in answer.body.types]}
            else:
                schema = schema_of[answer.body] if answer.body is not None else TEXT_SCHEMA
            responses[str(answer.status)] = {
                "description": answer.description,
                "content": {answer.media_type: {"schema": schema}},
            }
        for status in sorted(implied_refusals(endpoint, contract) | set(contract.refusals)):
            responses[str(status)] = _error_response(status)
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "operationId": endpoint.handler.__name__,
            "tags": [endpoint.tag],
            "responses": dict(sorted(responses.items())),
        }
        path = re.sub(r"{(\w+):\w+}", r"{\1}", endpoint.path)  # a route's converter is no part of the URL
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", path)
        ]
        parameters += [
            {"name": p.name, "in": "query", "required": False, "schema": p.schema, "description": p.description}
            for p in contract.query
        ]
        if parameters:
            operation["parameters"] = parameters
        if endpoint.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {JSON: {"schema": schema_of[endpoint.body]}},
            }
        elif endpoint.raw_body:
            operation["requestBody"] = {
                "required": True,
                "content": {JSON: {"schema": {"type": "object"}}},
            }
        if endpoint.role:
            operation["security"] = [{"bearer": []}, {"basic": []}]
            operation["description"] = f"Needs the {endpoint.role} role."
        paths.setdefault(path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Licentia license server", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
    }
