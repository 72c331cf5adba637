"""The sealing of triad Raft messages: only a holder of the relationship secret can read or forge one."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from licentia.cluster import raft_cipher
from licentia.cluster.raft_cipher import RaftCipher

SECRET = "relationship-secret-for-tests"
MESSAGE = b"a pickled append_entries message"


def test_a_sealed_message_opens_with_the_same_secret_on_another_member() -> None:
    token = RaftCipher(SECRET).encrypt_at_time(MESSAGE, 1234)

    other = RaftCipher(SECRET)
    assert other.extract_timestamp(token) == 1234
    assert other.decrypt(token) == MESSAGE


def test_the_message_is_not_readable_in_the_sealed_bytes() -> None:
    token = RaftCipher(SECRET).encrypt_at_time(MESSAGE, 1)
    assert MESSAGE not in token
    assert b"append_entries" not in token


def test_a_message_sealed_with_another_secret_is_refused() -> None:
    token = RaftCipher("some-other-triad").encrypt_at_time(MESSAGE, 1)
    with pytest.raises(InvalidTag):
        RaftCipher(SECRET).decrypt(token)


@pytest.mark.parametrize("position", [0, 5, 12, 25, -1])
def test_flipping_any_byte_makes_the_message_refused(position: int) -> None:
    cipher = RaftCipher(SECRET)
    token = bytearray(cipher.encrypt_at_time(MESSAGE, 77))
    token[position] ^= 0x01
    with pytest.raises(ValueError if position == 0 else InvalidTag):  # byte 0: the format version
        cipher.decrypt(bytes(token))


def test_a_changed_timestamp_is_refused_because_it_is_authenticated() -> None:
    cipher = RaftCipher(SECRET)
    token = cipher.encrypt_at_time(MESSAGE, 100)
    later = token[:1] + (200).to_bytes(8, "big") + token[9:]
    assert cipher.extract_timestamp(later) == 200
    with pytest.raises(InvalidTag):
        cipher.decrypt(later)


def test_unsealed_and_truncated_input_is_refused() -> None:
    cipher = RaftCipher(SECRET)
    for junk in (b"", b"\x01", MESSAGE, b"\x80" + bytes(60)):
        with pytest.raises(ValueError):
            cipher.extract_timestamp(junk)
        with pytest.raises(ValueError):
            cipher.decrypt(junk)


def test_nonces_never_repeat_and_a_new_prefix_is_drawn_when_the_counter_runs_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(raft_cipher, "_NONCE_COUNTER_LIMIT", 3)
    cipher = RaftCipher(SECRET)
    nonces = [cipher._next_nonce() for _ in range(7)]
    assert len(set(nonces)) == 7
    prefixes = [nonce[:8] for nonce in nonces]
    assert prefixes[0] == prefixes[1] == prefixes[2]
    assert prefixes[3] != prefixes[2]
    assert [int.from_bytes(nonce[8:], "big") for nonce in nonces] == [0, 1, 2, 0, 1, 2, 0]


def test_two_sealings_of_the_same_message_differ() -> None:
    cipher = RaftCipher(SECRET)
    assert cipher.encrypt_at_time(MESSAGE, 5) != cipher.encrypt_at_time(MESSAGE, 5)
