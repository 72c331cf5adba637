"""The 4-checks rule: check after each job; after a failed check, check before each job until 4 checks
in a row succeed, then only after jobs again. Unit tests of PrintCheckSchedule, then the SDK's
before_job/after_job against a real server, counted in the server's usage log."""

from __future__ import annotations

import asyncio

import pytest
from client_support import IDENTITY, PRINTS, admin_post, install_licenses, print_usage

from licentia.client import AsyncLicenseClient, LicenseClient, LicenseDenied
from licentia.client.policy import CHECKS_TO_RECOVER, PrintCheckSchedule


def test_schedule_checks_after_jobs_while_checks_succeed():
    schedule = PrintCheckSchedule()
    assert schedule.required == CHECKS_TO_RECOVER == 4
    for _ in range(10):
        assert schedule.before_jobs is False
        schedule.record(True)
    assert schedule.before_jobs is False and schedule.streak == 0


def test_schedule_needs_four_successes_in_a_row_after_a_failure():
    schedule = PrintCheckSchedule()
    schedule.record(False)
    assert schedule.before_jobs is True
    for expected_streak in (1, 2, 3):
        schedule.record(True)
        assert schedule.before_jobs is True and schedule.streak == expected_streak
    schedule.record(True)
    assert schedule.before_jobs is False and schedule.streak == 0


def test_schedule_failure_in_the_streak_starts_the_count_again():
    schedule = PrintCheckSchedule()
    schedule.record(False)
    for _ in range(3):
        schedule.record(True)
    schedule.record(False)
    assert schedule.before_jobs is True and schedule.streak == 0
    for _ in range(3):
        schedule.record(True)
    assert schedule.before_jobs is True, "3 since the last failure are not enough"
    schedule.record(True)
    assert schedule.before_jobs is False


def test_schedule_a_failure_after_recovery_switches_back_to_before_jobs():
    schedule = PrintCheckSchedule(required=2)
    schedule.record(False)
    schedule.record(True)
    schedule.record(True)
    assert schedule.before_jobs is False
    schedule.record(False)
    assert schedule.before_jobs is True and schedule.streak == 0


def run_job(client: LicenseClient, server, printer: str) -> tuple[bool, bool, bool]:
    """One print job the way an application runs it: (printed, checked before, checked after).

    A refused check before the job stops it. Whether a check was made is read from the server's usage
    log (a refused check after a job returns None, like no check at all)."""
    rows = len(print_usage(server))
    try:
        client.before_job(PRINTS, printer)
    except LicenseDenied:
        return False, len(print_usage(server)) == rows + 1, False
    checked_before = len(print_usage(server)) == rows + 1
    rows = len(print_usage(server))
    client.after_job(PRINTS, printer)
    return True, checked_before, len(print_usage(server)) == rows + 1


def test_before_and_after_job_follow_the_rule_against_a_real_server(server, issuer, tmp_path):
    install_licenses(server, issuer)
    with LicenseClient(server.url, cache_dir=tmp_path / "cache", **IDENTITY) as client:
        # Normal: one check per job, after it.
        assert run_job(client, server, "Zebra") == (True, False, True)
        assert run_job(client, server, "Zebra") == (True, False, True)
        [printer_id] = {row["printer_id"] for row in print_usage(server)}

        admin_post(server, f"/api/v1/admin/printers/{printer_id}/block")
        # The check after this job is refused: from now on the client checks before each job ...
        assert run_job(client, server, "Zebra") == (True, False, True)
        assert client.aio.print_schedule(PRINTS, "Zebra").before_jobs is True
        # ... and a refused check before a job stops the job.
        assert run_job(client, server, "Zebra") == (False, True, False)
        assert run_job(client, server, "Zebra") == (False, True, False)

        admin_post(server, f"/api/v1/admin/printers/{printer_id}/unblock")
        # 4 good checks in a row, each before its job (and none after) ...
        for _ in range(3):
            assert run_job(client, server, "Zebra") == (True, True, False)
            assert client.aio.print_schedule(PRINTS, "Zebra").before_jobs is True
        # ... the 4th switches back: that job's own check after it is the first "after" check again.
        assert run_job(client, server, "Zebra") == (True, True, True)
        assert client.aio.print_schedule(PRINTS, "Zebra").before_jobs is False
        for _ in range(3):
            assert run_job(client, server, "Zebra") == (True, False, True)

        # Another printer has its own schedule, untouched by Zebra's failures.
        assert client.aio.print_schedule(PRINTS, "Other").before_jobs is False

    rows = print_usage(server)
    outcomes = [(row["granted"], row["reason"]) for row in rows]
    ok, blocked = (True, "ok"), (False, "printer_blocked")
    assert outcomes == [ok, ok, blocked, blocked, blocked, ok, ok, ok, ok, ok, ok, ok, ok], outcomes


def test_async_jobs_follow_the_same_rule(server, issuer, tmp_path):
    install_licenses(server, issuer)

    async def scenario() -> list[str]:
        seen = []
        async with AsyncLicenseClient(server.url, cache_dir=tmp_path / "cache", **IDENTITY) as client:
            for _ in range(2):
                seen.append("before" if await client.before_job(PRINTS, "Epson") else "-")
                seen.append("after" if await client.after_job(PRINTS, "Epson") else "-")
            # An unknown product is refused: the after-job check fails quietly and switches the schedule.
            assert await client.after_job("NoSuchProduct", "Epson") is None
            assert client.print_schedule("NoSuchProduct", "Epson").before_jobs is True
            with pytest.raises(LicenseDenied) as refused:
                await client.before_job("NoSuchProduct", "Epson")
            assert refused.value.code == "no_license"
        return seen

    assert asyncio.run(scenario()) == ["-", "after", "-", "after"]
    assert len(print_usage(server)) == 4
