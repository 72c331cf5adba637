"""A paged table on a console page: its query from the page's URL, and the links to its other pages.

A table reads one page of a list (`licentia.api.lists`) whose parameters sit in
the page's own URL under a prefix (`lease_q`, `lease_after`, ...), so a page
with two tables pages each on its own, a bookmark shows the same rows, and the
live refresh (`?fragment=`) asks for the page on screen only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request

from licentia.api.errors import ApiError
from licentia.api.lists import ListKind, ListPage, ListQuery, list_query
from licentia.console.views import PageNotFound

PARAMS = ("sort", "order", "q", "after", "limit")


@dataclass(frozen=True)
class Table:
    """What a table's template needs besides its rows."""

    prefix: str
    query: ListQuery
    total: int | None
    shown: int
    next_url: str | None  # the next page, None on the last
    first_url: str | None  # the first page, None on it
    sorts: tuple[str, ...]
    others: dict[str, str]  # the page's other parameters (kept by the table's search form)


def table_query(request: Request, kind: ListKind, prefix: str) -> ListQuery:
    """The table's query from the page's URL; a parameter that is not valid is a 404 page that says why."""
    try:
        return list_query(kind, request.query_params, prefix)
    except ApiError as exc:
        raise PageNotFound(f"This table cannot be shown: {exc.message}.") from None


def _url(request: Request, params: Mapping[str, str]) -> str:
    query = urlencode(params)
    return request.url.path + (f"?{query}" if query else "")


def table(request: Request, kind: ListKind, prefix: str, page: ListPage) -> Table:
    own = {prefix + name for name in PARAMS}
    others = {name: value for name, value in request.query_params.items() if name not in own and name != "fragment"}
    current = {prefix + name: value for name, value in page.query.params().items()}
    next_url = _url(request, {**others, **current, prefix + "after": page.next}) if page.next else None
    first_url = _url(request, {**others, **current}) if page.query.after is not None else None
    return Table(
        prefix=prefix,
        query=page.query,
        total=page.total,
        shown=len(page.items),
        next_url=next_url,
        first_url=first_url,
        sorts=tuple(kind.sorts),
        others=others,
    )
