"""The server's certificate and how clients decide to trust one (licentia.tls), without a server process."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from cryptography import x509

from licentia.config import Config, ConfigError
from licentia.tls import ServerCertificate, ServerTrust, effective_mode, normalize_fingerprint


@pytest.mark.parametrize(
    ("host", "mode"),
    [("127.0.0.1", "off"), ("::1", "off"), ("localhost", "off"), ("0.0.0.0", "auto"), ("10.1.2.3", "auto"),
     ("lic-a.corp.example", "auto")],
)
def test_tls_defaults_to_auto_off_loopback_and_off_on_loopback(host, mode):
    assert effective_mode("", host) == mode
    assert Config(host=host).validate().tls_mode == mode
    assert effective_mode("off", "0.0.0.0") == "off"


def test_files_mode_needs_a_certificate_and_a_key():
    with pytest.raises(ConfigError, match="tls_cert and tls_key"):
        Config(tls="files").validate()
    with pytest.raises(ConfigError, match="only with tls = 'files'"):
        Config(tls="auto", tls_cert="x.pem").validate()
    with pytest.raises(ConfigError, match="'auto', 'off' or 'files'"):
        Config(tls="on").validate()


def test_self_signed_certificate_names_this_host_is_private_and_kept_across_starts(tmp_path):
    first = ServerCertificate.self_signed(tmp_path, "0.0.0.0")
    certificate = x509.load_pem_x509_certificate(first.cert_file.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert socket.gethostname() in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("0.0.0.0") not in names.get_values_for_type(x509.IPAddress)
    assert first.key_file.stat().st_mode & 0o077 == 0
    assert (tmp_path / "tls").stat().st_mode & 0o077 == 0
    again = ServerCertificate.self_signed(tmp_path, "0.0.0.0")
    assert again.fingerprint == first.fingerprint


def test_fingerprints_are_accepted_as_people_copy_them_and_anything_else_is_refused():
    colons = ":".join(["AB"] * 32)
    assert normalize_fingerprint("ab" * 32) == colons
    assert normalize_fingerprint(f"sha256:{colons.lower()}") == colons
    for wrong in ("", "AB:CD", "zz" * 32, "ab" * 33):
        with pytest.raises(ValueError, match="not a SHA-256 certificate fingerprint"):
            normalize_fingerprint(wrong)


def test_a_pinned_trust_learns_more_fingerprints_but_a_system_trust_ignores_them():
    pinned = ServerTrust(["ab" * 32])
    pinned.pin(["cd" * 32, ""])
    assert pinned.pins == {":".join(["AB"] * 32), ":".join(["CD"] * 32)}
    system = ServerTrust()
    system.pin(["cd" * 32])
    assert not system.pinned


def test_a_client_of_a_plain_http_server_loads_no_certificate_authorities(monkeypatch):
    """A triad's members on one machine talk plain HTTP: building the system CAs' context for them took ~80 ms of
    the active member's loop at each checkpoint it took from a peer."""
    import ssl

    made: list[object] = []
    real = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: made.append(a) or real(*a, **k))
    trust = ServerTrust([])
    assert trust.verify_for("http://127.0.0.1:8470") is False
    assert made == []
    assert isinstance(trust.verify_for("https://127.0.0.1:8470"), ssl.SSLContext)
    assert len(made) == 1
