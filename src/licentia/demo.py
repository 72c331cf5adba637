"""The demo set-up the README's first command runs: an issuer key and two demo licenses."""

from __future__ import annotations

import json
import time
from pathlib import Path

from licentia import license_file
from licentia.core.model import LicenseTerms
from licentia.store.private_file import write_private

YEAR = 365 * 86400.0


def prepare_demo(data_dir: Path) -> list[Path]:
    """Create (once) a demo issuer key trusted by this server and two signed demo licenses."""
    data_dir.mkdir(parents=True, exist_ok=True)
    key_path = data_dir / "demo-issuer.key"
    if key_path.exists():
        key = license_file.load_private_key(key_path)
    else:
        key = license_file.new_issuer_key()
        write_private(key_path, license_file.private_key_pem(key))
    issuers = data_dir / "trusted-issuers"
    issuers.mkdir(exist_ok=True)
    (issuers / "demo-issuer.pub").write_bytes(license_file.public_key_pem(key.public_key()))
    now = time.time()
    demos = [
        LicenseTerms(
            license_id="DEMO-PRINT-1",
            product="LabelStudio",
            edition="Automation",
            customer="Demo Customer",
            unit="printers",
            count=5,
            not_before=now - 60,
            expires=now + YEAR,
            grace_days=30,
            issued_at=now,
        ),
        LicenseTerms(
            license_id="DEMO-SEATS-1",
            product="CADStudio",
            edition="Professional",
            customer="Demo Customer",
            unit="seats",
            count=10,
            features=["render", "export"],
            not_before=now - 60,
            expires=now + YEAR,
            grace_days=0,
            issued_at=now,
        ),
    ]
    out_dir = data_dir / "demo-licenses"
    out_dir.mkdir(exist_ok=True)
    paths = []
    for terms in demos:
        path = out_dir / f"{terms.license_id}.lic"
        if not path.exists():
            path.write_text(json.dumps(license_file.issue(terms, key), indent=2) + "\n")
        paths.append(path)
    return paths
