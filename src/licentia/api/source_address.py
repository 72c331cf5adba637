"""Where a request came from: the connection's peer address, or the client a configured proxy names.

`X-Forwarded-For` is honoured only from the proxies listed in `forwarded_allow_ips` (see
`licentia.api.app`, which installs uvicorn's proxy-headers middleware for them and nothing else);
from anyone else the header is ignored. The address is spelled canonically, so an IPv4 client
reaching a dual-stack socket (::ffff:10.0.0.5) is 10.0.0.5 to the access rules and the usage log.
"""

from __future__ import annotations

from starlette.requests import Request

from licentia.core.access import canonical_address


def source_address(request: Request) -> str:
    return canonical_address(request.client.host) if request.client else ""
