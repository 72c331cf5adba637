"""Reading the state at a local clock changes nothing a later command sees.

A triad member that is replaying its log after a restart, or applying entries its
peers stamped a little earlier, is read (admin status, license list, metrics,
alerts) at its own wall clock, which is ahead of the times of the entries it still
applies. Such a read must not drop seats from the count: the member would then
grant a seat its peers refused, and the replicas would diverge.
"""

from __future__ import annotations

from collections.abc import Callable

from licentia.core import commands as c
from licentia.core.model import ClientInfo
from licentia.core.state import LicenseState
from licentia.core.views import license_status

T0 = 1_700_000_000.0


def checkout(name: str) -> c.Checkout:
    return c.Checkout(request_id=f"req-{name}", lease_id=name, product="Designer",
                      client=ClientInfo(host=name, user=name, application="Designer"))


def test_a_license_read_far_ahead_does_not_free_a_seat(state: LicenseState, install: Callable[..., str]) -> None:
    lic_id = install(license_id="ONE", product="Designer", unit="seats", count=1)
    assert state.apply(checkout("L1"), T0 + 1).ok  # held until T0 + 121 (default lease_ttl_s 120)
    ahead = license_status(state, state.licenses[lic_id], T0 + 10_000)  # a read at a clock far ahead
    assert ahead["used"] == 0
    refused = state.apply(checkout("L2"), T0 + 5)  # the next entry of the log, stamped back then
    assert not refused.ok and refused.code == "limit_exceeded"
    assert license_status(state, state.licenses[lic_id], T0 + 5)["used"] == 1
