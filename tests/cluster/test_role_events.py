"""The relationship timeline's record: bounded, newest first, paged by `before`, and who is unreachable now."""

from __future__ import annotations

from licentia.cluster.role_events import MAX_PAGE, RoleEvents


def _clock():
    ticks = iter(range(1000, 100000))
    return lambda: float(next(ticks))


def test_pages_go_from_the_newest_event_back_and_end_with_no_next():
    events = RoleEvents(clock=_clock())
    for number in range(25):
        events.record("active", f"event {number}.")
    first = events.page(limit=10)
    assert [e.text for e in first.events] == [f"event {n}." for n in range(24, 14, -1)]
    second = events.page(limit=10, before=first.next)
    assert [e.text for e in second.events] == [f"event {n}." for n in range(14, 4, -1)]
    last = events.page(limit=10, before=second.next)
    assert [e.text for e in last.events] == [f"event {n}." for n in range(4, -1, -1)] and last.next is None


def test_the_record_keeps_only_the_newest_events_and_a_page_is_capped():
    events = RoleEvents(keep=50, clock=_clock())
    for number in range(200):
        events.record("active", f"event {number}.")
    everything = events.page(limit=10_000)
    assert len(everything.events) == 50 and everything.events[-1].text == "event 150."
    assert len(RoleEvents(keep=500).page(limit=10_000).events) == 0
    many = RoleEvents(keep=500, clock=_clock())
    for number in range(300):
        many.record("active", f"event {number}.")
    assert len(many.page(limit=10_000).events) == MAX_PAGE


def test_a_member_is_unreachable_from_its_first_loss_until_it_is_reached_again():
    events = RoleEvents(clock=_clock())
    lost = events.record("unreachable", "lic-b cannot be reached from this server.", "lic-b")
    events.record("unreachable", "lic-b cannot be reached from this server.", "lic-b")
    assert events.page().unreachable_since == {"lic-b": lost.at}
    events.record("reachable", "lic-b can be reached again.", "lic-b")
    assert events.page().unreachable_since == {}
    events.record("unreachable", "lic-c cannot be reached from this server.", "lic-c")
    events.forget_members()
    assert events.page().unreachable_since == {}
