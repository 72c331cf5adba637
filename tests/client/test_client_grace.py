"""Connectivity grace: with no server reachable the client keeps working on its last signed grant for
the grace period (72 h by default), judged by an injected clock; tampered, foreign or expired tokens
grant nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from client_support import IDENTITY, PRINTS, SEATS, install_licenses
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from licentia.client import AsyncLicenseClient, LicenseClient, ServerUnavailable
from licentia.client.directory import ServerDirectory
from licentia.client.grant_keys import TrustedGrantKeys
from licentia.client.policy import GraceTokens
from licentia.grants import GrantSigner, grant_key_id, read_grant

HOUR = 3600.0
GRACE_S = 72 * HOUR
# The server reuses a signed token for up to a minute, so a token may be that much older than the answer.
SLACK_S = 90.0


class FakeClock:
    """The real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims_of(token: str) -> dict:
    return json.loads(unb64(token.split(".")[0]))


def test_grace_keeps_the_client_printing_for_72_hours_and_not_longer(server, issuer, tmp_path):
    install_licenses(server, issuer)
    clock = FakeClock()
    graced: list[tuple[str, float]] = []
    with LicenseClient(
        server.url, cache_dir=tmp_path / "cache", clock=clock, on_grace=lambda *args: graced.append(args), **IDENTITY
    ) as client:
        assert client.grace_left(PRINTS) == 0, "no grant yet"
        online = client.print_check(PRINTS, "P1")
        assert online["granted"] is True and "offline" not in online
        lease = client.checkout(SEATS)
        assert GRACE_S - SLACK_S < client.grace_left(PRINTS) <= GRACE_S
        assert GRACE_S - SLACK_S < client.grace_left(SEATS, "seat") <= GRACE_S
        assert client.grace_left(SEATS) == 0, "a seat grant does not cover printing"
        assert graced == []

        server.kill()  # no server reachable at all
        clock.offset = 71 * HOUR
        offline = client.print_check(PRINTS, "P1")
        assert offline["granted"] is True and offline["offline"] is True, offline
        assert HOUR - SLACK_S < offline["grace_seconds_left"] <= HOUR + 1
        assert HOUR - SLACK_S < client.grace_left(PRINTS) <= HOUR + 1
        assert len(graced) == 1 and graced[0][0] == PRINTS
        assert HOUR - SLACK_S < graced[0][1] <= HOUR + 1

        seat = client.checkout(SEATS)
        assert seat["granted"] is True and seat["offline"] is True and seat["lease_id"].startswith("offline-")
        assert client.checkin(seat["lease_id"])["offline"] is True
        assert len(graced) == 2 and graced[1][0] == SEATS

        clock.offset = 73 * HOUR
        assert client.grace_left(PRINTS) == 0
        with pytest.raises(ServerUnavailable):
            client.print_check(PRINTS, "P1")
        with pytest.raises(ServerUnavailable):
            client.checkout(SEATS)
        assert len(graced) == 2, "no grace callback once grace is spent"
        assert lease["lease_id"] in client.aio.leases


def test_async_client_grace_and_its_end(server, issuer, tmp_path):
    install_licenses(server, issuer)
    clock = FakeClock()

    async def scenario() -> None:
        async with AsyncLicenseClient(server.url, cache_dir=tmp_path / "cache", clock=clock, **IDENTITY) as client:
            assert "offline" not in await client.print_check(PRINTS, "P1")
            server.kill()
            clock.offset = 71.5 * HOUR
            answer = await client.print_check(PRINTS, "P1")
            assert answer["offline"] is True and 0.5 * HOUR - SLACK_S < answer["grace_seconds_left"] <= 0.5 * HOUR + 1
            # An offline answer is not a successful check: the schedule switches to checking before jobs.
            assert await client.after_job(PRINTS, "P1") is not None
            assert client.print_schedule(PRINTS, "P1").before_jobs is True
            clock.offset = 72.5 * HOUR
            with pytest.raises(ServerUnavailable):
                await client.before_job(PRINTS, "P1")
            assert await client.after_job(PRINTS, "P2") is None  # a failed after-job check does not raise

    asyncio.run(scenario())


def test_tampered_foreign_and_unknown_key_tokens_grant_no_grace(server, issuer, tmp_path):
    install_licenses(server, issuer)
    with LicenseClient(server.url, cache_dir=tmp_path / "cache", **IDENTITY) as client:
        client.print_check(PRINTS, "P1")
        genuine = client.aio.directory.grace_tokens[f"print/{PRINTS}"]
        body, signature = genuine.split(".")
        claims = claims_of(genuine)
        assert claims["kid"] in client.aio.trusted_keys.keys
        assert client.grace_left(PRINTS) > 0

        def with_claims(**changes) -> str:
            return b64(json.dumps({**claims, **changes}, sort_keys=True).encode()) + "." + signature

        evil = GrantSigner(Ed25519PrivateKey.generate(), issuer=claims["iss"])
        plain = {k: v for k, v in claims.items() if k not in ("iss", "kid")}
        impostor_body = b64(json.dumps({**claims, "exp": claims["exp"] + 365 * 86400}, sort_keys=True).encode())
        impostor_sig = b64(evil._key.sign(impostor_body.encode()))
        bad = {
            "exp raised": with_claims(exp=claims["exp"] + 365 * 86400),
            "subject changed": with_claims(sub="another-host/another-user/app"),
            "other key, unknown key id": evil.sign({**plain, "exp": claims["exp"] + 365 * 86400}),
            "other key, the server's key id": f"{impostor_body}.{impostor_sig}",
            "signature cut": f"{body}.",
            "not a token": "garbage",
        }
        assert evil.key_id not in client.aio.trusted_keys.keys

        server.kill()
        for what, token in bad.items():
            client.aio.grace.keep("print", PRINTS, token)
            assert client.grace_left(PRINTS) == 0, what
            with pytest.raises(ServerUnavailable):
                client.print_check(PRINTS, "P1")
        # A genuine print grant is no seat grant either.
        client.aio.grace.keep("seat", SEATS, genuine)
        assert client.grace_left(SEATS, "seat") == 0

        client.aio.grace.keep("print", PRINTS, genuine)
        assert client.print_check(PRINTS, "P1")["offline"] is True, "the genuine token still works"


def test_grace_tokens_need_a_known_key_this_client_and_the_right_kind_product_time_and_lifetime(tmp_path):
    signer = GrantSigner(Ed25519PrivateKey.generate(), issuer="server-a")
    now = time.time()
    subject = "ws-1/ann/app"

    def token(**changes) -> str:
        claims = {"kind": "print", "product": PRINTS, "sub": subject, "iat": now, "exp": now + HOUR, **changes}
        return signer.sign(claims)

    tokens = GraceTokens(ServerDirectory(["http://127.0.0.1:9"], tmp_path), subject)
    tokens.keep("print", PRINTS, token())
    assert tokens.seconds_left("print", PRINTS, TrustedGrantKeys(), now) == 0
    assert tokens.seconds_left("print", PRINTS, TrustedGrantKeys({"0000000000000000": signer.public_raw}), now) == 0
    trusted = TrustedGrantKeys({signer.key_id: signer.public_raw})
    assert signer.key_id == grant_key_id(signer.public_raw)
    assert HOUR - 1 < tokens.seconds_left("print", PRINTS, trusted, now) <= HOUR
    assert tokens.seconds_left("print", PRINTS, trusted, now + HOUR) == 0, "expired at exp"
    assert tokens.seconds_left("print", "Other", trusted, now) == 0
    assert tokens.seconds_left("seat", PRINTS, trusted, now) == 0
    assert read_grant(token(), trusted.keys)["product"] == PRINTS
    # Issued to another computer or user: copied here, it grants nothing.
    tokens.keep("print", PRINTS, token(sub="ws-2/bob/app"))
    assert tokens.seconds_left("print", PRINTS, trusted, now) == 0
    # Longer-lived than the relationship's grace (72 h unless a server or the key file says otherwise).
    tokens.keep("print", PRINTS, token(exp=now + 100 * HOUR))
    assert tokens.seconds_left("print", PRINTS, trusted, now) == 0
    trusted.grace_hours = 168
    assert tokens.seconds_left("print", PRINTS, trusted, now) > 99 * HOUR


def test_grace_survives_an_application_restart_offline_with_the_deployed_grant_key_file(server, issuer, tmp_path):
    install_licenses(server, issuer)
    keys_file = tmp_path / "grant-keys.json"
    with LicenseClient(server.url, cache_dir=tmp_path / "cache", **IDENTITY) as client:
        client.print_check(PRINTS, "P1")
        keys_file.write_text(json.dumps(client.grant_key_document()))
    server.kill()
    with LicenseClient(server.url, cache_dir=tmp_path / "cache", grant_keys_file=keys_file, **IDENTITY) as restarted:
        answer = restarted.print_check(PRINTS, "P1")
        assert answer["offline"] is True and answer["grace_seconds_left"] > 71 * HOUR
    # Without the deployed file, nothing in the user-writable cache is trusted to judge the token.
    with (
        LicenseClient(server.url, cache_dir=tmp_path / "cache", **IDENTITY) as unconfigured,
        pytest.raises(ServerUnavailable),
    ):
        unconfigured.print_check(PRINTS, "P1")


def test_a_key_and_token_forged_into_the_cache_grant_no_grace(server, issuer, tmp_path):
    """The review's finding: a forged key added to the cache file gave 87,600 hours of grace."""
    install_licenses(server, issuer)
    with LicenseClient(server.url, cache_dir=tmp_path / "cache", **IDENTITY) as client:
        client.print_check(PRINTS, "P1")
        cache = client.aio.directory.path
    server.kill()
    forger = GrantSigner(Ed25519PrivateKey.generate(), issuer="forged")
    now = time.time()
    subject = f"{IDENTITY['host']}/{IDENTITY['user']}/{IDENTITY['application']}"
    forged = forger.sign({"kind": "print", "product": PRINTS, "sub": subject, "iat": now, "exp": now + 87_600 * HOUR})
    data = json.loads(cache.read_text())
    data["grant_keys"] = {forger.key_id: base64.b64encode(forger.public_raw).decode()}
    data["grace_tokens"][f"print/{PRINTS}"] = forged
    cache.write_text(json.dumps(data))
    with LicenseClient(server.url, cache_dir=tmp_path / "cache", **IDENTITY) as restarted:
        assert restarted.grace_left(PRINTS) == 0
        with pytest.raises(ServerUnavailable):
            restarted.print_check(PRINTS, "P1")


def test_a_token_copied_from_another_computer_grants_no_grace(server, issuer, tmp_path):
    install_licenses(server, issuer)
    with LicenseClient(server.url, cache_dir=tmp_path / "theirs", host="ws-2", user="bob",
                       application=IDENTITY["application"]) as other:
        other.print_check(PRINTS, "P1")
        copied = other.aio.directory.grace_tokens[f"print/{PRINTS}"]
    with LicenseClient(server.url, cache_dir=tmp_path / "mine", **IDENTITY) as client:
        client.server_info()  # this client reached the server and trusts its key
        client.aio.grace.keep("print", PRINTS, copied)
        server.kill()
        assert client.grace_left(PRINTS) == 0
        with pytest.raises(ServerUnavailable):
            client.print_check(PRINTS, "P1")


def test_a_grant_key_whose_id_does_not_match_the_key_is_not_trusted():
    trusted = TrustedGrantKeys()
    impostor = GrantSigner(Ed25519PrivateKey.generate(), issuer="x")
    trusted.learn({"grant_key_id": "0123456789abcdef",
                   "grant_public_key": base64.b64encode(impostor.public_raw).decode()})
    assert trusted.keys == {}
