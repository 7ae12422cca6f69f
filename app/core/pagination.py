"""`limit`/`offset` paging for list endpoints.

The body stays a plain JSON array, as existing clients expect; the total count
travels in the `X-Total-Count` header. The default page holds every course of
any normal semester, so a client that never pages sees the whole list.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from sqlalchemy import Connection, RowMapping, Select, bindparam, func, select

from app.core.params import MAX_INT4, StrictInt

DEFAULT_PAGE_SIZE = 500
MAX_PAGE_SIZE = 1000
TOTAL_COUNT_HEADER = "X-Total-Count"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int = DEFAULT_PAGE_SIZE
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size"), StrictInt] = DEFAULT_PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=MAX_INT4, description="Items to skip"), StrictInt] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


# `async def` above: it does no I/O, so it needs no threadpool hop.
PageDep = Annotated[PageParams, Depends(page_params)]


def total_from_page(page: PageParams, returned: int) -> int | None:
    """The total, when the page itself proves it (a short, non-empty or first page)."""
    if returned < page.limit and (returned > 0 or page.offset == 0):
        return page.offset + returned
    return None


class PagedQuery:
    """A list statement built once, at import: its page and, when needed, its count.

    `limit` and `offset` are bind parameters, so each request only binds values
    to statements SQLAlchemy has already compiled and cached.
    """

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self._page = statement.limit(bindparam("limit")).offset(bindparam("offset"))
        self._count = select(func.count()).select_from(statement.order_by(None).subquery())

    def fetch(self, connection: Connection, page: PageParams, **params: Any) -> Page[RowMapping]:
        """One query for the page; a count query only when the page cannot tell the total."""
        rows = connection.execute(self._page, {**params, "limit": page.limit, "offset": page.offset}).mappings().all()
        total = total_from_page(page, len(rows))
        if total is None:
            total = connection.scalar(self._count, params) or 0
        return Page(rows, total)


def total_header(page: Page[Any]) -> dict[str, str]:
    return {TOTAL_COUNT_HEADER: str(page.total)}
