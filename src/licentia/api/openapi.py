"""The OpenAPI document, built from the endpoint table and the msgspec body types."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from licentia import __version__
from licentia.api.routing import Endpoint

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


def openapi_document(endpoints: list[Endpoint]) -> dict[str, Any]:
    body_types = sorted({e.body for e in endpoints if e.body is not None}, key=lambda t: t.__name__)
    refs, components = msgspec.json.schema_components(body_types, ref_template="#/components/schemas/{name}")
    ref_by_type = dict(zip(body_types, refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        operation: dict[str, Any] = {
            "summary": endpoint.summary,
            "operationId": endpoint.handler.__name__,
            "tags": [endpoint.tag],
            "responses": {
                "200": {"description": "OK"},
                "4XX": {"description": "Refused", "content": {"application/json": {"schema": ERROR_SCHEMA}}},
            },
        }
        path = re.sub(r"{(\w+):\w+}", r"{\1}", endpoint.path)  # a route's converter is no part of the URL
        params = re.findall(r"{(\w+)}", path)
        if params:
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in params
            ]
        if endpoint.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref_by_type[endpoint.body]}},
            }
        elif endpoint.raw_body:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
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
