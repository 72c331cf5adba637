"""Issuer keys and licenses: making a key pair and signing a license file (the vendor's side), and adding,
listing and removing a server's licenses, and its status, through the admin API."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from licentia import license_file
from licentia.cli.terminal import admin_session, print_json


def cmd_keys_new(args: argparse.Namespace) -> int:
    key = license_file.new_issuer_key()
    private, public = Path(f"{args.out}.key"), Path(f"{args.out}.pub")
    if private.exists() and not args.force:
        print(f"error: {private} exists (use --force to replace it)", file=sys.stderr)
        return 2
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(license_file.private_key_pem(key))
    public.write_bytes(license_file.public_key_pem(key.public_key()))
    print(f"issuer key {license_file.key_id(key.public_key())}: private {private}, public {public}")
    print(f"servers trust it when {public.name} is in their data directory's trusted-issuers/ folder")
    return 0


def cmd_license_issue(args: argparse.Namespace) -> int:
    from licentia.core.model import LicenseTerms

    now = time.time()
    terms = LicenseTerms(
        license_id=args.id or f"LIC-{uuid.uuid4().hex[:10].upper()}",
        product=args.product,
        edition=args.edition,
        customer=args.customer,
        unit=args.unit,
        count=args.count,
        features=args.feature or [],
        not_before=args.not_before if args.not_before is not None else now,
        expires=args.expires if args.expires is not None else now + args.days * 86400,
        grace_days=args.grace_days,
        issued_at=now,
        bound_to=list(dict.fromkeys(args.bind or [])),
    )
    if terms.count < 1 or terms.expires <= terms.not_before:
        print("error: count must be at least 1 and the expiry after not-before", file=sys.stderr)
        return 2
    try:
        document = license_file.issue(terms, license_file.load_private_key(args.key))
    except license_file.LicenseFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(document, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote license {terms.license_id} to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_license_add(args: argparse.Namespace) -> int:
    print_json(admin_session(args).request("POST", "/api/v1/admin/licenses", content=Path(args.file).read_bytes()))
    return 0


def cmd_license_list(args: argparse.Namespace) -> int:
    licenses = admin_session(args).request("GET", "/api/v1/admin/licenses")["licenses"]
    for lic in licenses:
        expires = datetime.fromtimestamp(lic["expires"]).date().isoformat()
        print(
            f"{lic['license_id']:<20} {lic['product']:<16} {lic['unit']:<8} "
            f"{lic['used']:>5}/{lic['count']:<5} {lic['status']:<10} expires {expires}"
        )
    if not licenses:
        print("no licenses installed")
    return 0


def cmd_license_remove(args: argparse.Namespace) -> int:
    # One path segment, whatever the id: "../users/x" must not become another URL.
    print_json(admin_session(args).request("DELETE", f"/api/v1/admin/licenses/{quote(args.license_id, safe='')}"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    print_json(admin_session(args).request("GET", "/api/v1/admin/status"))
    return 0

