"""Matching a request against the ordered "This License Server" access rules.

What a rule can trust: the user and computer names are what the client declares about itself;
the source address is what the connection (or a configured proxy) says; a "from where: host name"
rule matches the host name the edge verified for that address (reverse DNS, forward-confirmed),
never the name the client declares.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re

import msgspec

from licentia.core.model import AccessRule

RULE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class RequestOrigin:
    """Who is asking and from where, as the access rules see it.

    `user` and `host` are declared by the client; `ip` is the source address and `source_host` the
    host name verified for it. `source_host` None (an entry journaled before host names were
    verified) lets hostname rules match the declared `host`, as they did when that entry was decided.
    """

    __slots__ = ("host", "ip", "server", "source_host", "user")

    def __init__(
        self, *, user: str = "", host: str = "", server: str = "", ip: str = "", source_host: str | None = ""
    ) -> None:
        self.user = user
        self.host = host
        self.server = server
        self.ip = ip
        self.source_host = source_host


def canonical_address(text: str) -> str:
    """An address in its one canonical spelling: an IPv4-mapped IPv6 address (::ffff:10.0.0.5) as the
    IPv4 address it maps; text that is no address comes back unchanged."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _canonical_network(text: str) -> str:
    network = ipaddress.ip_network(text, strict=False)
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return str(ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False))
    return str(network)


def canonical_rules(rules: list[AccessRule]) -> list[AccessRule]:
    """`rules` (already valid) with their addresses and networks spelled canonically, IPv4-mapped IPv6
    ones as IPv4 (::ffff:10.0.0.0/104 is 10.0.0.0/8), so a rule says what it matches."""
    canonical = []
    for rule in rules:
        where = rule.where
        if rule.where_kind == "ip":
            where = canonical_address(where)
        elif rule.where_kind == "cidr":
            where = _canonical_network(where)
        canonical.append(rule if where == rule.where else msgspec.structs.replace(rule, where=where))
    return canonical


def _glob(pattern: str, value: str) -> bool:
    return bool(value) and fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _who_matches(rule: AccessRule, origin: RequestOrigin) -> bool:
    if rule.who_kind == "any":
        return True
    value = {"user": origin.user, "host": origin.host, "server": origin.server}[rule.who_kind]
    return _glob(rule.who, value)


def _where_matches(rule: AccessRule, origin: RequestOrigin) -> bool:
    if rule.where_kind == "any":
        return True
    if rule.where_kind == "hostname":
        return _glob(rule.where, origin.host if origin.source_host is None else origin.source_host)
    try:
        address = ipaddress.ip_address(canonical_address(origin.ip))
    except ValueError:
        return False
    if rule.where_kind == "ip":
        return address == ipaddress.ip_address(canonical_address(rule.where))
    return address in ipaddress.ip_network(_canonical_network(rule.where), strict=False)


@functools.cache
def default_decision(policy: str) -> tuple[bool, str]:
    """(allowed, why) where no rule matched: the default policy's (one tuple per policy, not one per lease)."""
    return policy == "allow", f"default policy ({policy})"


def matching_rule(rules: list[AccessRule], origin: RequestOrigin) -> AccessRule | None:
    for rule in rules:
        if _who_matches(rule, origin) and _where_matches(rule, origin):
            return rule
    return None


def validate_rules(rules: list[AccessRule]) -> str | None:
    """Return why `rules` cannot be installed, or None when they can."""
    seen: set[str] = set()
    for position, rule in enumerate(rules, start=1):
        if not RULE_ID.match(rule.rule_id):
            return f"rule {position}: rule_id must be 1-64 letters, digits, '_', '.' or '-'"
        if rule.rule_id in seen:
            return f"rule {position}: duplicate rule_id {rule.rule_id!r}"
        seen.add(rule.rule_id)
        if rule.who_kind != "any" and not rule.who:
            return f"rule {position}: 'who' is empty"
        if len(rule.who) > 200 or len(rule.where) > 200 or len(rule.description) > 500:
            return f"rule {position}: a field is too long"
        try:
            if rule.where_kind == "ip":
                ipaddress.ip_address(rule.where)
            elif rule.where_kind == "cidr":
                ipaddress.ip_network(rule.where, strict=False)
        except ValueError:
            return f"rule {position}: {rule.where!r} is not a valid {rule.where_kind}"
        if rule.where_kind == "hostname" and not rule.where:
            return f"rule {position}: 'where' is empty"
    return None
