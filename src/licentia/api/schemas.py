"""Request bodies of the HTTP API. Unknown fields are refused; lengths and ranges are checked."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from licentia.core.model import AccessRule, ClientInfo, MappingRule, PrinterIdentity

Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:@-]+$")]
Product = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Body(msgspec.Struct, forbid_unknown_fields=True):
    pass


class PrintCheckRequest(Body):
    product: Product
    printer: PrinterIdentity
    client: ClientInfo = msgspec.field(default_factory=ClientInfo)


class CheckoutRequest(Body):
    product: Product
    client: ClientInfo = msgspec.field(default_factory=ClientInfo)
    request_id: Ident | None = None
    feature: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    ttl_s: Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)] | None = None


class HeartbeatRequest(Body):
    lease_ids: Annotated[list[Ident], msgspec.Meta(min_length=1, max_length=1000)]


class LoginRequest(Body):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class GroupRequest(Body):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PrinterGroupRequest(Body):
    group: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class MappingRulesRequest(Body):
    rules: Annotated[list[MappingRule], msgspec.Meta(max_length=500)]


class SettingsRequest(Body):
    changes: dict[str, Any]
    expected_version: int | None = None


class AccessRulesRequest(Body):
    rules: Annotated[list[AccessRule], msgspec.Meta(max_length=500)]
    default_policy: Literal["allow", "deny"] | None = None


class AccessTestRequest(Body):
    user: Annotated[str, msgspec.Meta(max_length=200)] = ""
    host: Annotated[str, msgspec.Meta(max_length=200)] = ""
    server: Annotated[str, msgspec.Meta(max_length=200)] = ""
    ip: Annotated[str, msgspec.Meta(max_length=64)] = ""


class UserRequest(Body):
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=256)]
    role: Literal["viewer", "manager", "admin"] = "viewer"
