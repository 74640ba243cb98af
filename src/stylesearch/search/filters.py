"""The one filter grammar of the CLI, the HTTP API and the Python API: column = value, repeated for any-of.

- HTTP: `?gender=Men&gender=Women&year=2011-2013` gives `(column, value)` pairs directly.
- CLI: `--filter gender=Men,Women --filter year=2011-2013`; each `a,b` is two pairs of one column.

Both become the same pairs and go through `group`: a repeated column means any of its values, a
`year`-like value `A-B` is a range the Searcher reads, and every mistake is a `QueryError` that names
the filter. The Searcher checks the values themselves against the catalogue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from stylesearch.errors import QueryError

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
