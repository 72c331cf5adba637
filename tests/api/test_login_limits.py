"""The failed-login limiter on its own, with a clock the test moves: locks, growing delays, forgetting, memory."""

from __future__ import annotations

import pytest

from licentia.api.login_limits import LoginLimits, address_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _fail(limits: LoginLimits, times: int, username: str = "admin", address: str = "10.0.0.1") -> list[str]:
    sentences: list[str] = []
    for _ in range(times):
        sentences += [lock.sentence() for lock in limits.failed(username, address)]
    return sentences


def test_five_failures_lock_the_user_and_the_address_for_the_first_delay(clock):
    limits = LoginLimits(clock=clock)
    assert _fail(limits, 4) == []
    assert limits.locked_for("admin", "10.0.0.1") == 0
    sentences = _fail(limits, 1)
    assert len(sentences) == 2
    assert any("user 'admin'" in s and "30 seconds" in s and "5 failed" in s for s in sentences), sentences
    assert any("address 10.0.0.1" in s for s in sentences), sentences
    # Either key alone locks: another address for this user, another user from this address.
    assert limits.locked_for("admin", "10.0.0.2") == pytest.approx(30)
    assert limits.locked_for("someone", "10.0.0.1") == pytest.approx(30)
    assert limits.locked_for("someone", "10.0.0.2") == 0
    assert limits.locks == {"user": 1, "address": 1}


def test_each_failure_after_a_lock_doubles_the_delay_up_to_the_cap(clock):
    limits = LoginLimits(clock=clock, first_lock_s=30, max_lock_s=900)
    _fail(limits, 5, address="10.0.0.1")
    delays = []
    for attempt in range(8):
        clock.now += limits.locked_for("admin", "10.0.0.9") + 0.001
        assert limits.locked_for("admin", "10.0.0.9") == 0
        _fail(limits, 1, address=f"10.0.1.{attempt}")
        delays.append(round(limits.locked_for("admin", "10.0.0.9")))
    assert delays == [60, 120, 240, 480, 900, 900, 900, 900]


def test_a_success_resets_the_user_and_the_address(clock):
    limits = LoginLimits(clock=clock)
    _fail(limits, 4)
    limits.succeeded("admin", "10.0.0.1")
    assert _fail(limits, 4) == []
    assert limits.locked_for("admin", "10.0.0.1") == 0


def test_failures_are_forgotten_after_a_quiet_hour(clock):
    limits = LoginLimits(clock=clock, forget_s=3600)
    _fail(limits, 4)
    clock.now += 3601
    assert _fail(limits, 4) == []
    assert limits.locked_for("admin", "10.0.0.1") == 0


def test_memory_stays_bounded_under_a_spray_of_names_and_addresses(clock):
    limits = LoginLimits(clock=clock, max_entries=100)
    for n in range(5000):
        limits.failed(f"user{n}", f"10.{n // 250}.{n % 250}.1")
        clock.now += 0.01
    assert limits.entries() <= 200


def test_an_ipv6_client_is_counted_by_its_64_bit_network_and_a_mapped_ipv4_as_ipv4():
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:10.0.0.7") == "10.0.0.7"
    assert address_key("10.0.0.7") == "10.0.0.7"
    assert address_key("testclient") == "testclient"
