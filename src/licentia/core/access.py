"""Matching a request against the ordered "This License Server" access rules."""

from __future__ import annotations

import fnmatch
import ipaddress
import re

from licentia.core.model import AccessRule

RULE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class RequestOrigin:
    """Who is asking and from where, as the access rules see it."""

    __slots__ = ("host", "ip", "server", "user")

    def __init__(self, *, user: str = "", host: str = "", server: str = "", ip: str = "") -> None:
        self.user = user
        self.host = host
        self.server = server
        self.ip = ip


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
        return _glob(rule.where, origin.host)
    try:
        address = ipaddress.ip_address(origin.ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if rule.where_kind == "ip":
        return address == ipaddress.ip_address(rule.where)
    return address in ipaddress.ip_network(rule.where, strict=False)


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
