"""Signed requests and answers between the servers of a relationship (licentia.cluster.peer_auth)."""

from __future__ import annotations

from licentia.cluster import peer_auth

SECRET = "the-pairs-secret"
PATH = "/api/v1/peer/changes"


def _verify(header: str, guard: peer_auth.ReplayGuard, body: bytes = b"{}", now: float = 1000.0,
            secret: str = SECRET) -> peer_auth.Verdict:
    return peer_auth.verify(header, secret, "backup", "POST", PATH, body, now, guard)


def test_a_signed_request_is_accepted_once_and_its_replay_is_refused():
    guard = peer_auth.ReplayGuard()
    signed = peer_auth.sign(SECRET, "backup", "POST", PATH, b"{}", 1000.0)
    first = _verify(signed.header, guard)
    assert first.problem == "" and first.mac == signed.mac
    replay = _verify(signed.header, guard, now=1001.0)
    assert "already received" in replay.problem


def test_a_request_with_another_body_secret_sender_or_age_is_refused():
    guard = peer_auth.ReplayGuard()
    signed = peer_auth.sign(SECRET, "backup", "POST", PATH, b"{}", 1000.0)
    assert "does not match" in _verify(signed.header, guard, body=b'{"since": 0}').problem
    assert "does not match" in _verify(signed.header, guard, secret="another").problem
    assert "too old" in _verify(signed.header, guard, now=1000.0 + 301).problem
    intruder = peer_auth.sign(SECRET, "intruder", "POST", PATH, b"{}", 1000.0)
    assert "not a member" in _verify(intruder.header, guard).problem
    assert "not signed" in _verify("backup 1000.0 deadbeef", guard).problem
    assert "not a member" in _verify("é 1 2 3", guard).problem
    # None of the refused ones used up the nonce: the genuine request still goes through.
    assert _verify(signed.header, guard).problem == ""


def test_an_answer_is_genuine_only_for_its_own_request_status_and_body():
    request = peer_auth.sign(SECRET, "main", "POST", PATH, b"{}", 1000.0)
    other = peer_auth.sign(SECRET, "main", "POST", PATH, b"{}", 1000.0)
    signature = peer_auth.answer_signature(SECRET, request.mac, 200, b'{"changes": []}')
    assert peer_auth.answer_is_genuine(SECRET, request, 200, b'{"changes": []}', signature)
    assert not peer_auth.answer_is_genuine(SECRET, request, 200, b'{"changes": [1]}', signature)
    assert not peer_auth.answer_is_genuine(SECRET, other, 200, b'{"changes": []}', signature)
    assert not peer_auth.answer_is_genuine(SECRET, request, 403, b'{"changes": []}', signature)
    assert not peer_auth.answer_is_genuine("another", request, 200, b'{"changes": []}', signature)
    assert not peer_auth.answer_is_genuine(SECRET, request, 200, b'{"changes": []}', "")


def test_the_replay_guard_forgets_nonces_after_twice_the_accepted_clock_difference():
    guard = peer_auth.ReplayGuard()
    assert guard.first_use("n0", 0.0)
    for i in range(1, 1024):
        assert guard.first_use(f"n{i}", 0.0)
    assert guard.first_use("late", 2 * peer_auth.MAX_SKEW_S + 1)
    assert "n0" not in guard.seen and not guard.first_use("late", 700.0)
