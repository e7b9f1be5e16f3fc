"""Listings newest first: the filters, time window and page every list endpoint shares
(recordings, survey answers, quality evaluations)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

MAX_LIST = 500
"""The most rows one page of a listing holds."""

T = TypeVar("T")


def newest_first(
    query: Select[T],
    *,
    when: InstrumentedAttribute[datetime],
    key: InstrumentedAttribute[str],
    equal: Iterable[tuple[InstrumentedAttribute[Any], Any]] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Select[T]:
    """``query`` narrowed to the rows whose columns equal the given values (a ``None``
    value: no filter on that column) and whose ``when`` is in ``[since, until)``, newest
    first (``key`` breaks ties, so pages never overlap), one page of ``limit`` rows."""
    for column, wanted in equal:
        if wanted is not None:
            query = query.where(column == wanted)
    if since is not None:
        query = query.where(when >= since)
    if until is not None:
        query = query.where(when < until)
    return query.order_by(when.desc(), key).limit(limit).offset(offset)
