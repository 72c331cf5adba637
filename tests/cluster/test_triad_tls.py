"""The triad CA derived from the relationship secret, and the member certificates it signs."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from licentia.cluster.triad_tls import (
    ensure_member_tls,
    load_member_tls,
    member_tls,
    triad_ca_cert,
    triad_ca_key,
    write_member_tls,
)

SECRET = "relationship-secret-for-tls-tests"


def _private_value(key: ec.EllipticCurvePrivateKey) -> int:
    return key.private_numbers().private_value


def test_every_member_derives_the_same_ca_from_the_secret_and_only_from_it() -> None:
    assert _private_value(triad_ca_key(SECRET, "north")) == _private_value(triad_ca_key(SECRET, "north"))
    assert _private_value(triad_ca_key(SECRET, "north")) != _private_value(triad_ca_key("another-secret", "north"))
    assert _private_value(triad_ca_key(SECRET, "north")) != _private_value(triad_ca_key(SECRET, "south"))

    one, other = triad_ca_cert(SECRET, "north"), triad_ca_cert(SECRET, "north")
    assert one.public_key() == other.public_key()
    assert (one.subject, one.serial_number, one.not_valid_before_utc, one.not_valid_after_utc) == (
        other.subject, other.serial_number, other.not_valid_before_utc, other.not_valid_after_utc)
    assert one.subject.rfc4514_string() == "CN=Licentia triad north CA"
    assert one.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert one.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_a_member_certificate_verifies_under_another_members_ca_certificate() -> None:
    a = member_tls(SECRET, "north", "lic-a", "127.0.0.1")
    b = member_tls(SECRET, "north", "lic-b", "127.0.0.1")
    cert_a = x509.load_pem_x509_certificate(a.cert_pem)
    cert_a.verify_directly_issued_by(x509.load_pem_x509_certificate(b.ca_pem))  # raises if not
    ca_a, ca_b = x509.load_pem_x509_certificate(a.ca_pem), x509.load_pem_x509_certificate(b.ca_pem)
    assert ca_a.public_key() == ca_b.public_key()
    assert a.key_pem != b.key_pem

    assert cert_a.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "lic-a"
    names = cert_a.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usages = cert_a.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}

    foreign_ca = triad_ca_cert("another-secret", "north")
    with pytest.raises(InvalidSignature):
        cert_a.verify_directly_issued_by(foreign_ca)


def test_a_member_named_by_host_name_gets_a_dns_name() -> None:
    cert = x509.load_pem_x509_certificate(member_tls(SECRET, "north", "lic-c", "licentia-c.example").cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["licentia-c.example"]
    assert names.get_values_for_type(x509.IPAddress) == []


def test_the_files_are_private_and_kept_while_they_fit(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    assert load_member_tls(directory) is None
    first = ensure_member_tls(directory, SECRET, "north", "lic-a", "127.0.0.1")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(path.name for path in directory.iterdir()) == ["ca.pem", "member.key", "member.pem"]
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in directory.iterdir())
    assert load_member_tls(directory) == first
    assert ensure_member_tls(directory, SECRET, "north", "lic-a", "127.0.0.1") == first

    # A new secret (a new CA) or a new address: a new certificate.
    renewed = ensure_member_tls(directory, "a-new-secret", "north", "lic-a", "127.0.0.1")
    assert renewed != first and load_member_tls(directory) == renewed
    moved = ensure_member_tls(directory, "a-new-secret", "north", "lic-a", "127.0.0.2")
    assert moved.cert_pem != renewed.cert_pem

    write_member_tls(directory, first)
    assert load_member_tls(directory) == first
