"""Paged lists of leases, printers and clients: the admin API and the console's tables read these.

A page is read from one of the state's sorted orders (`licentia.core.listing`):
O(log n + page) whatever the number of records. `?limit=` (1-500, default
100) sets the page size, `?sort=` and `?order=asc|desc` the order, `?q=` finds
the rows whose search column starts with it (case does not matter; the rows
then come in that column's order), and `?after=` is the `next` cursor of the
previous page. A filter no order answers (say, the recent printers by name) is
applied while reading, looking at no more than `SCAN_BUDGET` rows per page; a
page can then be short, and its `next` cursor goes on from where it stopped.
See docs/paged-lists.md.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from licentia.api.errors import ApiError
from licentia.core.listing import Key, Order, exact_range, key_fits, prefix_range, text_key
from licentia.core.state import DAY, LicenseState
from licentia.core.views import printer_view

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
SCAN_BUDGET = 20 * MAX_LIMIT


@dataclass(frozen=True)
class SortOrder:
    """A `?sort=` value: the index it reads, and whether the index's own order is the descending one."""

    index: Callable[[LicenseState], Order]
    shape: tuple[type, ...]  # the index's key fields (to check a cursor)
    reversed_index: bool = False
    text: bool = True  # a column `q` can search


@dataclass(frozen=True)
class ListKind:
    name: str
    sorts: dict[str, SortOrder]
    default_sort: str
    default_order: str
    search_sort: str  # the sort `q` searches when the chosen one is not a text column


LEASES = ListKind(
    "leases",
    {
        "product": SortOrder(lambda s: s.listings().leases_by_product, (str, float, str), text=False),
        "user": SortOrder(lambda s: s.listings().leases_by_holder, (str, float, str)),
    },
    "product",
    "asc",
    "user",
)
PRINTERS = ListKind(
    "printers",
    {
        "last_used": SortOrder(lambda s: s.listings().printers_by_seen, (float, str), reversed_index=True, text=False),
        "name": SortOrder(lambda s: s.listings().printers_by_name, (str, str)),
    },
    "last_used",
    "desc",
    "name",
)
CLIENTS = ListKind(
    "clients",
    {
        "last_seen": SortOrder(lambda s: s.listings().clients_by_seen, (float, str), reversed_index=True, text=False),
        "host": SortOrder(lambda s: s.listings().clients_by_host, (str, str)),
    },
    "last_seen",
    "desc",
    "host",
)


@dataclass(frozen=True)
class ListQuery:
    sort: str
    order: str  # "asc" | "desc"
    q: str
    after: Key | None
    limit: int

    def params(self, **changes: Any) -> dict[str, str]:
        """The query parameters that ask for this list again (with `changes`); no search and the default page
        size are left out."""
        limit = "" if self.limit == DEFAULT_LIMIT else str(self.limit)
        values = {"sort": self.sort, "order": self.order, "q": self.q, "limit": limit, **changes}
        return {name: str(value) for name, value in values.items() if value not in ("", None)}


@dataclass(frozen=True)
class ListPage:
    """One page: its rows, the cursor of the next page (None at the end), and how many rows match
    (None where only reading them all would tell)."""

    items: list[dict[str, Any]]
    next: str | None
    total: int | None
    query: ListQuery

    def answer(self, name: str) -> dict[str, Any]:
        return {name: self.items, "next": self.next, "total": self.total, "limit": self.query.limit}


def encode_cursor(key: Key) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(list(key))).decode().rstrip("=")


def decode_cursor(text: str, shape: tuple[type, ...]) -> Key:
    try:
        key = tuple(msgspec.json.decode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))))
    except (ValueError, binascii.Error, msgspec.DecodeError, TypeError):
        key = ()
    if not key_fits(key, shape):
        raise ApiError("invalid_request", "the 'after' cursor is not one this list gave out; start from the first page")
    return key


def list_query(kind: ListKind, params: Mapping[str, str], prefix: str = "") -> ListQuery:
    """`params` (the query string; each name after `prefix`) as a ListQuery, or a 422 naming what is wrong."""

    def get(name: str, default: str = "") -> str:
        return params.get(prefix + name, default)

    sort = get("sort", kind.default_sort)
    if sort not in kind.sorts:
        raise ApiError("invalid_request", f"sort must be one of: {', '.join(kind.sorts)}")
    try:
        limit = int(get("limit", str(DEFAULT_LIMIT)))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError("invalid_request", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    q = get("q").strip()
    if len(q) > 200:
        raise ApiError("invalid_request", "the search text is at most 200 characters")
    order = get("order", kind.default_order if sort == kind.default_sort else "asc")
    if q and not kind.sorts[sort].text:  # found rows come in the search column's order, A to Z
        sort, order = kind.search_sort, "asc"
    if order not in ("asc", "desc"):
        raise ApiError("invalid_request", "order must be asc or desc")
    cursor = get("after")
    after = decode_cursor(cursor, kind.sorts[sort].shape) if cursor else None
    return ListQuery(sort=sort, order=order, q=q, after=after, limit=limit)


def _read(
    index: Order,
    query: ListQuery,
    descending: bool,
    view: Callable[[Key], dict[str, Any] | None],
    low: Key | None = None,
    high: Key | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `query.limit` rows from [low, high) after the cursor; `view` gives a key's row or None to skip it.
    Looks at no more than SCAN_BUDGET keys; the cursor of the next page is None when the range is done."""
    if query.q:
        search_low, search_high = prefix_range(text_key(query.q))
        low = search_low if low is None else max(low, search_low)
        high = search_high if high is None else min(high, search_high)
    keys: Iterator[Key] = index.walk(low=low, high=high, after=query.after, descending=descending)
    items: list[dict[str, Any]] = []
    last: Key | None = None
    for looked, key in enumerate(keys):
        if looked >= SCAN_BUDGET and last is not None:
            return items, encode_cursor(last)
        row = view(key)
        if row is not None:
            if len(items) == query.limit:  # one more matching row: there is a next page
                return items, encode_cursor(last or key)
            items.append(row)
        last = key
    return items, None


def _descending(kind: ListKind, query: ListQuery) -> bool:
    return (query.order == "desc") != kind.sorts[query.sort].reversed_index


def lease_view(state: LicenseState, lease_id: str, now: float) -> dict[str, Any] | None:
    """A seat lease held now as the API and the console show it (None once expired, awaiting reclaim)."""
    lease = state.leases.get(lease_id)
    if lease is None or lease.expires_at <= now:
        return None
    return {**msgspec.to_builtins(lease), "expires_in_s": round(lease.expires_at - now, 1)}


def lease_page(state: LicenseState, now: float, query: ListQuery, *, license_id: str | None = None) -> ListPage:
    """Seat leases held now (of the license `license_id`: in its product's range of the by-product order)."""
    index = LEASES.sorts[query.sort].index(state)
    low, high = None, None
    if license_id is not None and query.sort == "product":
        low, high = exact_range(state.licenses[license_id].terms.product)

    def view(key: Key) -> dict[str, Any] | None:
        lease = state.leases.get(key[-1])
        if lease is None or (license_id is not None and lease.license_id != license_id):
            return None
        return lease_view(state, key[-1], now)

    items, cursor = _read(index, query, _descending(LEASES, query), view, low, high)
    if license_id is not None:
        total = None if query.q else state.counted_at(license_id, now)
    else:
        total = index.count(*prefix_range(text_key(query.q))) if query.q else len(index)
    return ListPage(items, cursor, total, query)


def printer_page(
    state: LicenseState,
    now: float,
    query: ListQuery,
    *,
    group: str | None = None,
    recent: bool = False,
    license_id: str | None = None,
) -> ListPage:
    """Printers (of `group`; only those used inside the printer window when `recent`; only those counted against
    the license `license_id` now, a filter read in the window's range of the by-last-used order)."""
    page = _printer_page(state, now, query, group, recent or license_id is not None, license_id)
    if license_id is None or query.q:
        return page
    return ListPage(page.items, page.next, state.counted_at(license_id, now), query)


def _printer_page(
    state: LicenseState, now: float, query: ListQuery, group: str | None, recent: bool, license_id: str | None
) -> ListPage:
    listings = state.listings()
    window_start = -(now - state.settings.printer_window_days * DAY)  # keys hold minus the time last seen
    descending = _descending(PRINTERS, query)

    def view(key: Key) -> dict[str, Any] | None:
        printer = state.printers[key[-1]]
        if group is not None and printer.group != group:
            return None
        if license_id is not None and printer.license_id != license_id:
            return None
        shown = printer_view(state, printer, now)
        if license_id is not None:
            return shown if shown["counted"] else None
        return shown if shown["in_window"] or not recent else None

    if query.sort == "last_used" and group is not None:
        # The group's own range of the by-group order (group, minus last seen, id) answers both filters.
        low, high = exact_range(group)
        if recent:
            high = (group, window_start)
        index: Order = listings.printers_by_group
        after = query.after and (group, *query.after)
        grouped = ListQuery(query.sort, query.order, "", after, query.limit)
        items, cursor = _read(index, grouped, descending, view, low, high)
        if cursor is not None:  # the cursor is the by-last-seen key: without the group field
            cursor = encode_cursor(decode_cursor(cursor, index.shape)[1:])
        return ListPage(items, cursor, index.count(low, high), query)
    if query.sort == "last_used":
        index = listings.printers_by_seen
        seen_high: Key | None = (window_start,) if recent else None
        items, cursor = _read(index, query, descending, view, None, seen_high)
        return ListPage(items, cursor, index.count(None, seen_high), query)
    index = listings.printers_by_name
    items, cursor = _read(index, query, descending, view)
    exact = group is None and not recent
    total = (index.count(*prefix_range(text_key(query.q))) if query.q else len(index)) if exact else None
    if total is None and group is None and not query.q:
        total = listings.printers_by_seen.count(None, (window_start,))
    return ListPage(items, cursor, total, query)


def client_page(state: LicenseState, query: ListQuery) -> ListPage:
    index = CLIENTS.sorts[query.sort].index(state)
    items, cursor = _read(
        index, query, _descending(CLIENTS, query), lambda key: msgspec.to_builtins(state.clients[key[-1]])
    )
    total = index.count(*prefix_range(text_key(query.q))) if query.q else len(index)
    return ListPage(items, cursor, total, query)
