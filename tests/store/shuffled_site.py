"""A large state whose list orders all differ from the order its records were added in, for the snapshot tests."""

from __future__ import annotations

from licentia.core.commands import AddLicense, Checkout, PrintCheck, SetPrinterGroup, UpdateSettings
from licentia.core.model import ClientInfo, LicenseTerms, PrinterIdentity
from licentia.core.state import LicenseState

T0 = 1_700_000_000.0


def shuffled_site(n: int) -> LicenseState:
    """`n` leases and `n` printers (and their clients): times, names and holders out of the order they were added
    in, two products for the leases, a quarter of the printers in the Blocked group."""
    state = LicenseState()
    for license_id, product, unit in (("LIC-P", "Labels", "printers"), ("LIC-S", "CAD", "seats"),
                                      ("LIC-T", "Draw", "seats")):
        terms = LicenseTerms(license_id=license_id, product=product, edition="pro", customer="Acme", unit=unit,
                             count=2 * n, not_before=0.0, expires=T0 + 10**8)
        assert state.apply(AddLicense(terms=terms, key_id="k", signature="cw=="), T0).ok
    assert state.apply(UpdateSettings(changes={"lease_ttl_s": 86400.0}), T0).ok
    for i in range(n):
        j = (i * 7919) % n  # a permutation of 0..n-1
        client = ClientInfo(host=f"WS-{j:06d}", user=f"User{(i * 31) % n:06d}" if i % 5 else "",
                            application="CAD Studio", version="9.1")
        assert state.apply(Checkout(request_id=f"r{i}", lease_id=f"lease-{j:07d}", product="CAD" if i % 3 else "Draw",
                                    client=client, source_ip="10.8.0.1"), T0 + (i * 13) % n).ok
        printer = PrinterIdentity(name=f"Prn-{(i * 17) % n:06d}", driver="ZDesigner ZD420", port=f"IP_{i}")
        printing = ClientInfo(host=f"print-{i % 50:02d}", user="printing", application="Label Studio", version="3")
        outcome = state.apply(PrintCheck(product="Labels", printer=printer, client=printing, source_ip="10.9.0.1"),
                              T0 + n + (i * 11) % n)
        assert outcome.ok
        if i % 4 == 0:
            assert state.apply(SetPrinterGroup(printer_id=outcome.result.printer_id, group="Blocked"), T0).ok
    return state
