"""The one filter grammar of the CLI, the HTTP API and the Python API: column = value, repeated for any-of.

- HTTP: `?gender=Men&gender=Women&year=2011-2013` gives `(column, value)` pairs directly.
- CLI: `--filter gender=Men,Women --filter year=2011-2013`; each `a,b` is two pairs of one column.

Both become the same pairs and go through `group`: a repeated column means any of its values, a
`year`-like value `A-B` is a range the Searcher reads, and every mistake is a `QueryError` that names
the filter. The Searcher checks the values themselves against the catalogue.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Sequence

from stylesearch.errors import QueryError

FilterValue = str | int | Sequence[str] | tuple[int | None, int | None]

MAX_FILTER_VALUES = 50  # per column: more is a mistake or an attack, not a shopper
MAX_VALUE_CHARS = 200


def parse_filters(items: Sequence[str], columns: Sequence[str] | None = None) -> dict[str, str | list[str]]:
    """Filters from `column=value` strings; a repeated column or `a,b` means any of the values.

    >>> parse_filters(["gender=Women", "baseColour=Black,Blue"])
    {'gender': 'Women', 'baseColour': ['Black', 'Blue']}
    """
    pairs = []
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column.strip() or not value.strip():
            raise QueryError(f"filter {item!r}: write it as column=value, e.g. gender=Women or year=2011-2013")
        pairs += [(column.strip(), v) for v in value.split(",") if v.strip()]
    return group(pairs, columns)


def group(pairs: Iterable[tuple[str, str]], columns: Sequence[str] | None = None,
          reserved: frozenset[str] = frozenset()) -> dict[str, str | list[str]]:
    """`(column, value)` pairs as the Searcher's filters; `reserved` keys (q, k, ...) are skipped."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        if key in reserved:
            continue
        if columns is not None and key not in columns:
            raise QueryError(f"unknown filter {_short(key)}; filter on one of: {', '.join(columns)}")
        if not value.strip():
            raise QueryError(f"empty value for filter {_short(key)}")
        if len(value) > MAX_VALUE_CHARS:
            raise QueryError(f"value for filter {_short(key)} is over {MAX_VALUE_CHARS} characters")
        grouped.setdefault(key, []).append(value.strip())
    filters: dict[str, str | list[str]] = {}
    for key, values in grouped.items():
        if len(values) > MAX_FILTER_VALUES:
            raise QueryError(f"filter {_short(key)} has {len(values)} values; at most {MAX_FILTER_VALUES}")
        filters[key] = values[0] if len(values) == 1 else values
    return filters


def _short(text: str, limit: int = 60) -> str:
    # Echo a user's key back, but never a megabyte of it.
    return repr(text if len(text) <= limit else text[:limit] + "...")


# Values of numeric columns: one number or a range (year=2011-2013, price=10-50, price=100-, price=-12).
_YEAR = re.compile(r"^\s*(\d{4})?\s*(?:(-|\.\.|to)\s*(\d{4})?)?\s*$")
_NUMBER_RANGE = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*(?:(-|\.\.|to)\s*(\d+(?:\.\d+)?)?)?\s*$")


def parse_number_range(column: str, value: FilterValue) -> tuple[float | None, float | None]:
    """(lo, hi) from 20, "20", "10-50", "10..50", "10-" (10 and up), "-50" (up to 50) or (10, None)."""
    if isinstance(value, tuple) and len(value) == 2:
        lo, hi = (_bound(column, value, end) for end in value)
    else:
        match = _NUMBER_RANGE.match(str(value))
        if not match or not (match.group(1) or match.group(3)):
            raise QueryError(f"filter {column}={value!r}: give a number or a range, e.g. {column}=20 or "
                             f"{column}=10-50")
        lo = _bound(column, value, float(match.group(1))) if match.group(1) else None  # 400 digits: inf
        hi = _bound(column, value, float(match.group(3))) if match.group(3) else (None if match.group(2) else lo)
    if lo is not None and hi is not None and lo > hi:
        raise QueryError(f"filter {column}={value!r}: the range is empty ({lo:g} > {hi:g}); put the smaller end first")
    return lo, hi


def _bound(column: str, value: FilterValue, end: object) -> float | None:
    # One end of a range: None (open) or a finite real number. Never NaN, which would silently match
    # nothing; nor inf (400 digits parse to it); nor a bool or text from a Python caller's tuple, which
    # would fail deep in numpy instead of here with the filter's name.
    if end is None:
        return None
    if isinstance(end, bool) or not isinstance(end, numbers.Real) or not math.isfinite(end):
        raise QueryError(f"filter {column}={value!r}: each end of the range must be a finite number or None, "
                         f"not {end!r}")
    return float(end)


def parse_year_range(value: FilterValue) -> tuple[int | None, int | None]:
    """(lo, hi) from 2012, "2012", "2011-2013", "2011-", "-2013" or (2011, None)."""
    if isinstance(value, tuple) and len(value) == 2:
        lo, hi = (None if end is None else int(end) for end in (_bound("year", value, e) for e in value))
    elif isinstance(value, numbers.Integral):  # numpy integers too
        return int(value), int(value)
    else:
        match = _YEAR.match(str(value))
        if not match or not (match.group(1) or match.group(3)):
            raise QueryError(f"year filter {value!r}: give a year (2012) or a range (2011-2013, 2011-, -2013)")
        lo = int(match.group(1)) if match.group(1) else None
        hi = int(match.group(3)) if match.group(3) else (lo if not match.group(2) else None)
    if lo is not None and hi is not None and lo > hi:
        raise QueryError(f"year filter {value!r}: the range is empty ({lo} > {hi})")
    return lo, hi
