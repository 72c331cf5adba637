"""Fixtures for the core state machine tests: a fresh state and signed licenses installed at a given time."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from harness import Issuer

from licentia import license_file
from licentia.core.commands import AddLicense
from licentia.core.state import LicenseState, Outcome

T0 = 1_700_000_000.0
DAY = 86400.0


@pytest.fixture
def state() -> LicenseState:
    return LicenseState()


@pytest.fixture
def trusted(issuer: Issuer) -> license_file.TrustedIssuers:
    return license_file.TrustedIssuers([issuer.key.public_key()])


@pytest.fixture
def signed(issuer: Issuer, trusted: license_file.TrustedIssuers) -> Callable[..., AddLicense]:
    """An AddLicense for terms signed by the trusted issuer, valid from T0 - 60 s for a year unless told."""

    def make(**fields) -> AddLicense:
        fields.setdefault("not_before", T0 - 60)
        fields.setdefault("expires", T0 + 365 * DAY)
        document = license_file.issue(issuer.terms(**fields), issuer.key)
        return trusted.verify(json.dumps(document))

    return make


@pytest.fixture
def install(state: LicenseState, signed: Callable[..., AddLicense]) -> Callable[..., str]:
    """Install a signed license into `state` at `now` (default T0); return its license id."""

    def add(now: float = T0, **fields) -> str:
        outcome: Outcome = state.apply(signed(**fields), now)
        assert outcome.ok, outcome
        return outcome.result.license_id

    return add
