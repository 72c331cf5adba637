"""HTTPS for the API, the console and the traffic between servers: the server's certificate, and how a
client decides to trust one.

A server listens with TLS when `[server] tls` is `auto` (a self-signed certificate made in the data
directory on first start) or `files` (`tls_cert` and `tls_key`), and in clear when it is `off`. The
default is `off` on a loopback address (the quickstart) and `auto` anywhere else.

A client (the SDK, the CLI, a server talking to the other member of its relationship) trusts a server
either through the system's certificate authorities and the server's name, as a browser does, or
through a pinned SHA-256 fingerprint of the certificate itself. Pinning works by looking at the
certificate the server presents before anything is sent, refusing it unless its fingerprint is pinned,
and then trusting exactly that certificate on every connection: a server whose certificate changed is
refused with a sentence that says so, and no request (no password) ever reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from licentia.store import data_directory
from licentia.store.data_directory import write_private

TlsMode = Literal["auto", "off", "files"]
TLS_MODES: tuple[TlsMode, ...] = get_args(TlsMode)
CERT_FILE = data_directory.TLS_CERTIFICATE.name
KEY_FILE = data_directory.TLS_KEY.name
CERT_YEARS = 10
PROBE_TIMEOUT_S = 5.0


class CertificateRefused(Exception):
    """A server's certificate is not the one this client was told to trust."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def effective_mode(mode: TlsMode | Literal[""], host: str) -> TlsMode:
    """`auto`, `off` or `files`: the configured mode, or by default `off` on loopback and `auto` elsewhere."""
    if mode:
        return mode
    return "off" if is_loopback(host) else "auto"


def fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate, as browsers show it: AB:CD:...:EF."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def normalize_fingerprint(text: str) -> str:
    """A fingerprint as given by a person (any case, with or without colons or a `sha256:` prefix)."""
    raw = text.strip().lower().removeprefix("sha256:").replace(":", "").replace(" ", "")
    if len(raw) != 64 or any(c not in "0123456789abcdef" for c in raw):
        raise ValueError(f"{text!r} is not a SHA-256 certificate fingerprint (64 hex digits, colons allowed)")
    raw = raw.upper()
    return ":".join(raw[i : i + 2] for i in range(0, 64, 2))


@dataclass(frozen=True)
class ServerCertificate:
    """The certificate and key a server listens with, and the fingerprint clients pin."""

    cert_file: Path
    key_file: Path
    fingerprint: str

    @classmethod
    def from_files(cls, cert_file: Path, key_file: Path) -> ServerCertificate:
        pem = cert_file.read_bytes()
        der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        return cls(cert_file, key_file, fingerprint(der))

    @classmethod
    def self_signed(cls, data_dir: Path, host: str) -> ServerCertificate:
        """The data directory's self-signed certificate, made on first start with this host's names."""
        cert_file, key_file = data_dir / CERT_FILE, data_dir / KEY_FILE
        if not (cert_file.exists() and key_file.exists()):
            key = ec.generate_private_key(ec.SECP256R1())
            names, addresses = _host_identities(host)
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
            now = datetime.datetime.now(datetime.UTC)
            alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
            alt_names += [x509.IPAddress(a) for a in addresses]
            certificate = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=365 * CERT_YEARS))
                .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
                )
                .sign(key, hashes.SHA256())
            )
            cert_file.parent.mkdir(mode=0o700, exist_ok=True)
            write_private(
                key_file,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            write_private(cert_file, certificate.public_bytes(serialization.Encoding.PEM))
        return cls.from_files(cert_file, key_file)


def _host_identities(
    host: str,
) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """The names and addresses a certificate for this host should carry."""
    names = [n for n in dict.fromkeys([socket.gethostname(), socket.getfqdn(), "localhost"]) if n]
    addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    try:
        addresses.add(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        if host:
            names.insert(0, host)
    for name in names:
        try:
            for info in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM):
                addresses.add(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        except (OSError, ValueError):
            continue
    unspecified = [a for a in addresses if a.is_unspecified]
    for a in unspecified:
        addresses.discard(a)
    return list(dict.fromkeys(names)), sorted(addresses, key=str)


def server_context(certificate: ServerCertificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate.cert_file, certificate.key_file)
    return context


def _endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 443


class ServerTrust:
    """Which servers' certificates a client accepts: the system's CAs, or pinned fingerprints.

    `context` is given to the HTTP client (httpx `verify=`). With pins, call `prepare(url)` (or
    `prepare_sync`) before the first request to a server: it looks at the certificate the server
    presents, refuses it unless its fingerprint is pinned, and makes a new `context` that also trusts
    it (`generation` counts the contexts made; a client rebuilds its HTTP client when it changes).
    Fingerprints learned later from a verified server (its relationship's members) can be added with
    `pin`.
    """

    def __init__(self, fingerprints: Iterable[str] = ()) -> None:
        self.pins: set[str] = {normalize_fingerprint(f) for f in fingerprints if f}
        self._prepared: set[tuple[str, int]] = set()
        self._accepted: list[bytes] = []
        # Bumped whenever `context` is replaced: OpenSSL does not apply certificates added to a context
        # that has already made connections, so a new certificate means a new context (and HTTP client).
        self.generation = 0
        self._context: ssl.SSLContext | None = None

    @property
    def context(self) -> ssl.SSLContext:
        """Made when first asked for: the system CAs' context takes ~80 ms to load, on the caller's loop."""
        if self._context is None:
            self._context = self._new_context()
        return self._context

    def verify_for(self, url: str) -> ssl.SSLContext | bool:
        """What an HTTP client to `url` verifies its server with: `context` over HTTPS, nothing over plain HTTP
        (a triad's members on one machine's loopback), where no context is made."""
        return self.context if url.startswith("https:") else False

    def _new_context(self) -> ssl.SSLContext:
        if not self.pins:
            return ssl.create_default_context()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False  # the fingerprint is the identity
        context.verify_mode = ssl.CERT_REQUIRED
        # The pinned certificates themselves are the trust anchors, whoever issued them (a self-signed one,
        # or a leaf from the site's CA given with `tls = "files"`), even when several carry the same name.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        for der in self._accepted:
            context.load_verify_locations(cadata=der)
        return context

    @property
    def pinned(self) -> bool:
        return bool(self.pins)

    def pin(self, fingerprints: Iterable[str]) -> None:
        """Also accept these (learned from a server this client already verified)."""
        if self.pinned:
            self.pins.update(normalize_fingerprint(f) for f in fingerprints if f)

    def _accept(self, url: str, der: bytes) -> None:
        seen = fingerprint(der)
        if seen not in self.pins:
            pinned = ", ".join(sorted(self.pins))
            raise CertificateRefused(
                f"the server at {url} presents a certificate with SHA-256 fingerprint {seen}, which is not "
                f"the pinned one ({pinned}); if the server's certificate was replaced on purpose, pin the "
                "new fingerprint shown on its console"
            )
        if der not in self._accepted:
            self._accepted.append(der)
            self._context = self._new_context()
            self.generation += 1
        self._prepared.add(_endpoint(url))

    async def prepare(self, url: str) -> None:
        if not self.pinned or not url.startswith("https:") or _endpoint(url) in self._prepared:
            return
        self._accept(url, await presented_certificate(url))

    def prepare_sync(self, url: str) -> None:
        if not self.pinned or not url.startswith("https:") or _endpoint(url) in self._prepared:
            return
        host, port = _endpoint(url)
        try:
            pem = ssl.get_server_certificate((host, port), timeout=PROBE_TIMEOUT_S)
        except OSError as exc:
            raise CertificateRefused(f"cannot read the certificate of {url}: {exc.strerror or exc}") from None
        self._accept(url, ssl.PEM_cert_to_DER_cert(pem))

    def explain(self, url: str, error: BaseException) -> str | None:
        """A sentence for a connection that failed because the certificate was not trusted, else None."""
        text = str(error)
        if "CERTIFICATE_VERIFY_FAILED" not in text and "certificate verify failed" not in text:
            return None
        if self.pinned:
            self._prepared.discard(_endpoint(url))
            return (
                f"the server at {url} no longer presents the pinned certificate ({', '.join(sorted(self.pins))}); "
                "if its certificate was replaced on purpose, pin the new fingerprint shown on its console"
            )
        return (
            f"the certificate of {url} is not signed by a certificate authority this computer trusts; "
            "pin its SHA-256 fingerprint (shown on the server's console) instead"
        )


async def presented_certificate(url: str) -> bytes:
    """The DER certificate a server presents, read without trusting it and without sending a request."""
    host, port = _endpoint(url)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=host or None), PROBE_TIMEOUT_S
        )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        raise CertificateRefused(f"cannot read the certificate of {url}: {exc}") from None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if not der:
        raise CertificateRefused(f"{url} presented no certificate")
    return bytes(der)
