"""The triad's certificate authority and each member's certificate, for the etcd cluster the triad runs.

Each member runs its own etcd member, and every connection to etcd, peer or client, is TLS
with a client certificate. The three members must trust one CA. Its key is not generated
and sent around: it is derived, with HKDF-SHA256, from the relationship secret the three
members already share (the same secret that seals the triad's other traffic). Every
member therefore derives the same CA key by itself, and the key never crosses the network
or sits in a file. The price is that the CA is exactly as secret as the relationship
secret: whoever holds the secret can issue certificates the triad trusts, which they could
equally do by joining the triad. A new secret gives a new CA, and every member then issues
itself a new certificate under it.

The CA certificate is rebuilt from the key on every member: same subject, same key, same
serial (derived from the key) and a fixed validity, so that the certificates the members
build are equivalent (only the ECDSA signature, which is randomized, differs) and a member
certificate issued under one member's copy verifies under any other's.

Each member's own key is random and stays on that member, in `member.key` next to
`member.pem` and `ca.pem`, all readable by the owner only.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from licentia.store.private_file import write_private

logger = logging.getLogger("licentia.etcd")

CA_INFO_PREFIX = b"licentia triad ca "
# The order of the P-256 group (FIPS 186-4, D.1.2.3).
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
CA_NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
CA_NOT_AFTER = datetime.datetime(2120, 1, 1, tzinfo=datetime.UTC)
MEMBER_VALIDITY = datetime.timedelta(days=365 * 50)
CA_FILE = "ca.pem"
CERT_FILE = "member.pem"
KEY_FILE = "member.key"


@dataclass(frozen=True)
class MemberTLS:
    """What one member presents and trusts: the triad CA, its own certificate and its own key, all PEM."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def triad_ca_key(secret: str, triad_name: str) -> ec.EllipticCurvePrivateKey:
    """The triad CA's P-256 key, the same on every member that holds `secret`.

    48 bytes of HKDF output reduced into [1, n-1] (FIPS 186-4 B.4.1): the 64 extra bits
    make the bias of the reduction negligible.
    """
    okm = HKDF(algorithm=hashes.SHA256(), length=48, salt=None,
               info=CA_INFO_PREFIX + triad_name.encode()).derive(secret.encode())
    scalar = int.from_bytes(okm, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _ca_name(triad_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Licentia triad {triad_name} CA")])


def _ca_serial(key: ec.EllipticCurvePrivateKey) -> int:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return (int.from_bytes(hashlib.sha256(der).digest()[:20], "big") >> 1) or 1  # positive, under 2**159


def triad_ca_cert(secret: str, triad_name: str) -> x509.Certificate:
    """The triad CA's self-signed certificate; every member builds an equivalent one from the secret."""
    key = triad_ca_key(secret, triad_name)
    name = _ca_name(triad_name)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_ca_serial(key))
        .not_valid_before(CA_NOT_BEFORE)
        .not_valid_after(CA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _subject_alternative_names(host: str) -> list[x509.GeneralName]:
    try:
        return [x509.IPAddress(ipaddress.ip_address(host))]
    except ValueError:
        return [x509.DNSName(host)]


def member_tls(secret: str, triad_name: str, member_name: str, host: str) -> MemberTLS:
    """A fresh key for this member and a certificate for it, signed by the triad CA, for both TLS roles."""
    ca_key = triad_ca_key(secret, triad_name)
    ca_cert = triad_ca_cert(secret, triad_name)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + MEMBER_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName(_subject_alternative_names(host)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return MemberTLS(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
    )


def write_member_tls(directory: Path, tls: MemberTLS) -> None:
    """Write ca.pem, member.pem and member.key (mode 0600) into `directory` (mode 0700)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    write_private(directory / CA_FILE, tls.ca_pem)
    write_private(directory / CERT_FILE, tls.cert_pem)
    write_private(directory / KEY_FILE, tls.key_pem)


def load_member_tls(directory: Path) -> MemberTLS | None:
    """The member's TLS files from `directory`, or None if any of them is missing."""
    try:
        return MemberTLS(
            ca_pem=(directory / CA_FILE).read_bytes(),
            cert_pem=(directory / CERT_FILE).read_bytes(),
            key_pem=(directory / KEY_FILE).read_bytes(),
        )
    except FileNotFoundError:
        return None


def _still_valid(tls: MemberTLS, secret: str, triad_name: str, member_name: str, host: str) -> bool:
    """Whether stored files were issued under this secret's CA, for this member and host, and are still valid."""
    try:
        ca_cert = x509.load_pem_x509_certificate(tls.ca_pem)
        cert = x509.load_pem_x509_certificate(tls.cert_pem)
        key = serialization.load_pem_private_key(tls.key_pem, password=None)
    except ValueError:
        return False
    ca_public = triad_ca_key(secret, triad_name).public_key()
    if ca_cert.public_key() != ca_public or cert.public_key() != key.public_key():
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    common_names = [attribute.value for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        names = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return False
    expires = cert.not_valid_after_utc
    return (common_names == [member_name] and names == _subject_alternative_names(host)
            and expires > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30))


def ensure_member_tls(directory: Path, secret: str, triad_name: str, member_name: str, host: str) -> MemberTLS:
    """The member's TLS files: those in `directory` if they still fit, or new ones, written there."""
    stored = load_member_tls(directory)
    if stored is not None and _still_valid(stored, secret, triad_name, member_name, host):
        return stored
    if stored is not None:
        logger.info("The stored etcd certificate for %s no longer fits the triad; issuing a new one.", member_name)
    tls = member_tls(secret, triad_name, member_name, host)
    write_member_tls(directory, tls)
    return tls
