"""Password hashing on its own: current scrypt parameters, old hashes recognised, and never on the event loop."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time

import pytest
from api_support import legacy_hash

from licentia.api import passwords
from licentia.api.passwords import (
    DUMMY_HASH,
    PasswordHasher,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)


def test_new_hashes_use_scrypt_with_n_2_17_r_8_p_1_and_verify():
    stored = hash_password("a-good-password")
    assert stored.startswith("scrypt$131072$8$1$")
    assert verify_password("a-good-password", stored)
    assert not verify_password("another-password", stored)
    assert not needs_rehash(stored)


def test_an_old_parameter_hash_still_verifies_and_asks_for_a_rehash():
    stored = legacy_hash("old-password")
    assert verify_password("old-password", stored)
    assert needs_rehash(stored)


def test_the_dummy_hash_costs_a_real_check_and_matches_nothing():
    assert DUMMY_HASH.startswith("scrypt$131072$8$1$")
    started = time.perf_counter()
    assert not verify_password("", DUMMY_HASH)
    dummy_s = time.perf_counter() - started
    stored = hash_password("x")
    started = time.perf_counter()
    verify_password("y", stored)
    real_s = time.perf_counter() - started
    assert dummy_s > real_s / 2, (dummy_s, real_s)


@pytest.mark.parametrize(
    "password", ["with\x00nul-inside", "tab\there-too", "new\nline-pass", "delete\x7fchar", "c1\x85-control"]
)
def test_passwords_with_control_characters_are_refused(password):
    assert password_problem(password)


@pytest.mark.parametrize("password", ["long enough", "Ünïcödé-pässwörd", "p@ss w0rd!#$%^&*()"])
def test_printable_passwords_are_accepted(password):
    assert password_problem(password) is None


def test_password_checks_run_off_the_event_loop_at_most_two_at_a_time(monkeypatch):
    running = 0
    most = 0
    threads: set[int] = set()
    lock = threading.Lock()
    real_scrypt = hashlib.scrypt

    def counting_scrypt(*args, **kwargs):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.get_ident())
        try:
            return real_scrypt(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    stored = hash_password("the-password")
    monkeypatch.setattr(passwords.hashlib, "scrypt", counting_scrypt)

    async def scenario() -> tuple[list[bool], float]:
        hasher = PasswordHasher(workers=2)
        longest_gap = 0.0
        done = False

        async def ticker() -> None:
            nonlocal longest_gap
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                longest_gap = max(longest_gap, now - last)
                last = now

        tick = asyncio.create_task(ticker())
        results = await asyncio.gather(*(hasher.verify(f"guess-{n}", stored) for n in range(5)))
        done = True
        await tick
        return results, longest_gap

    loop_thread = threading.get_ident()
    results, longest_gap = asyncio.run(scenario())
    assert results == [False] * 5
    assert most == 2, most
    assert loop_thread not in threads
    # One scrypt takes ~0.3 s; the loop never waited for one (a generous bound for a busy machine).
    assert longest_gap < 0.15, longest_gap


def test_checks_beyond_the_waiting_limit_are_refused_at_once_and_the_others_still_run():
    stored = hash_password("the-password")

    async def scenario() -> list[object]:
        hasher = PasswordHasher(workers=1, max_waiting=2)
        checks = [hasher.verify("the-password", stored) for _ in range(4)]
        return await asyncio.gather(*checks, return_exceptions=True)

    results = asyncio.run(scenario())
    # One runs, two wait, the fourth finds the queue full.
    assert results[:3] == [True, True, True]
    assert isinstance(results[3], passwords.PasswordChecksBusy)
