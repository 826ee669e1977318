"""Comparing argument values: the matchers, text normalisation and the documented date rules.

Pure functions with no knowledge of episodes or rewards; :mod:`trustee_env.checks` uses them to
decide whether a call matches an expected call.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from datetime import date, time
from typing import Any

import jsonpointer

from trustee_env.schemas import canonical_json

__all__ = ["FREE_TEXT_NAMES", "choose_matcher", "match_value", "normalize", "parse_temporal", "resolve_from_result"]

FREE_TEXT_NAMES = frozenset(
    {
        "message",
        "body",
        "text",
        "content",
        "note",
        "notes",
        "description",
        "comment",
        "reason",
        "subject",
        "query",
        "title",
        "instructions",
        "question",
        "review",
    }
)


def choose_matcher(name: str, schema: dict[str, Any], value: Any) -> str:
    """The matcher an expected argument gets from its JSON schema (DESIGN, decision 3).

    Arrays are ordered unless the schema makes them set-like (``uniqueItems``).
    """
    kind = schema.get("type")
    if "enum" in schema or kind in ("boolean", "integer") or isinstance(value, bool):
        return "exact"
    if kind == "array" or isinstance(value, list):
        return "set" if schema.get("uniqueItems") else "ordered"
    if kind == "object" or isinstance(value, dict):
        return "any"
    if kind == "string" or isinstance(value, str):
        if schema.get("format") in ("date", "date-time", "time"):
            return "normalized"
        if name.lower() in FREE_TEXT_NAMES or (isinstance(value, str) and len(value) > 60):
            return "any"
    return "normalized"


# Punctuation that never carries meaning in an argument value: dropped, or read as a word break.
_TEXT_PUNCTUATION = str.maketrans({**{c: None for c in ".,;:!?'\"()[]{}‘’“”«»"}, **{c: " " for c in "-_/‐–—"}})
_NUMBER = re.compile(r"-?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")


def normalize(value: Any) -> Any:
    """The comparable form of a value: numbers as floats, dates and times as ISO 8601, text folded.

    Text is NFKC-normalised, casefolded, stripped of punctuation (``. , ; : ! ? ' " ( ) [ ] { }``;
    hyphens, underscores and slashes become spaces) and whitespace-collapsed. Symbols such as
    ``# + & @ % $`` are kept ("C#" is not "C"). Dates follow :func:`parse_temporal`.
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = " ".join(unicodedata.normalize("NFKC", value).casefold().split())
        if _NUMBER.fullmatch(text):
            return float(text.replace(",", ""))
        temporal = parse_temporal(text)
        if temporal is not None:
            return temporal
        return " ".join(text.translate(_TEXT_PUNCTUATION).split())
    if isinstance(value, list):
        return [normalize(item) for item in value]
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    return value


_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_YEAR_FIRST = re.compile(
    r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})"
    r"(?:[t ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(z|[+-]\d{2}:?\d{2})?)?"
)
_NUMERIC_DMY = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4})")
_TIME = re.compile(r"(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?")


def _iso_date(year: int, month: int, day: int) -> str | None:
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def _iso_time(hour: int, minute: int, second: int, meridiem: str | None) -> str | None:
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem.startswith("p") else 0)
    try:
        return time(hour, minute, second).isoformat()
    except ValueError:
        return None


def parse_temporal(text: str) -> str | None:
    """An ISO 8601 form of a date, date-time or time written in an unambiguous way, else None.

    The rules, so no date is ever silently reinterpreted:

    * year first (``2022-01-05``, ``2022-1-5``, ``2022/01/05``, with an optional ``T``/space time and zone);
    * a month name with a day and a four-digit year in any order (``May 12, 2022``, ``May.12,2022``,
      ``12 May 2022``, ``12-May-2022``, ``Mar 17th 1915``);
    * numeric day/month/year only when one of the first two numbers is above 12 (``03/17/1915`` is
      March 17, ``17/03/1915`` too); ``03/04/2022`` is ambiguous and stays text;
    * a time with a colon or am/pm (``14:30``, ``2:30 PM``, ``2 pm``) as ``HH:MM:SS``.
    """
    text = text.strip().casefold()
    if match := _YEAR_FIRST.fullmatch(text):
        year, _, month, day, hour, minute, second, zone = match.groups()
        day_iso = _iso_date(int(year), int(month), int(day))
        if day_iso is None or hour is None:
            return day_iso
        clock = _iso_time(int(hour), int(minute), int(second or 0), None)
        if clock is None:
            return None
        suffix = "" if zone is None else ("+00:00" if zone == "z" else zone[:3] + ":" + zone[-2:])
        return f"{day_iso}T{clock}{suffix}"
    if match := _NUMERIC_DMY.fullmatch(text):
        first, _, second, year = match.groups()
        a, b = int(first), int(second)
        if a > 12 >= b:
            return _iso_date(int(year), b, a)
        if b > 12 >= a:
            return _iso_date(int(year), a, b)
        return None
    parts = [part for part in re.split(r"[\s.,/-]+", text) if part]
    if len(parts) == 3 and sum(part in _MONTHS for part in parts) == 1:
        month = next(_MONTHS[part] for part in parts if part in _MONTHS)
        numbers = [re.fullmatch(r"(\d{1,4})(?:st|nd|rd|th)?", part) for part in parts if part not in _MONTHS]
        if all(numbers):
            values = [m.group(1) for m in numbers if m]
            years = [v for v in values if len(v) == 4]
            days = [v for v in values if len(v) <= 2]
            if len(years) == 1 and len(days) == 1:
                return _iso_date(int(years[0]), month, int(days[0]))
        return None
    if (match := _TIME.fullmatch(text)) and (match.group(2) is not None or match.group(4)):
        hour, minute, second, meridiem = match.groups()
        return _iso_time(int(hour), int(minute or 0), int(second or 0), meridiem)
    return None


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return canonical_json(a) == canonical_json(b)


def _same(expected: Any, actual: Any) -> bool:
    """Equal after normalisation: arrays element by element in order, objects key by key."""
    if isinstance(expected, list) or isinstance(actual, list):
        return (
            isinstance(expected, list)
            and isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_same(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, dict) or isinstance(actual, dict):
        return (
            isinstance(expected, dict)
            and isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(_same(expected[k], actual[k]) for k in expected)
        )
    left, right = normalize(expected), normalize(actual)
    if isinstance(left, str) and isinstance(right, str) and _same_day(left, right):
        return True
    return _equal(left, right)


def _same_day(left: str, right: str) -> bool:
    """A date-only value matches a date-time on that day (the date did not ask for a time)."""
    short, long = sorted((left, right), key=len)
    return len(short) == 10 and parse_temporal(short) == short and long.startswith(short + "T")


def resolve_from_result(matcher: str, result_of: Callable[[int], Any]) -> Any:
    """The value a ``from_result:<k>#<pointer>`` matcher names: the pointer into ``result_of(k)``.

    Raises LookupError when ``k`` is not a number, has no result, or the pointer finds nothing.
    """
    source, _, pointer = matcher.removeprefix("from_result:").partition("#")
    try:
        return jsonpointer.resolve_pointer(result_of(int(source)), pointer)
    except (ValueError, LookupError, jsonpointer.JsonPointerException, TypeError) as err:
        raise LookupError(f"{matcher}: {err}") from None


def match_value(
    matcher: str,
    expected: Any,
    actual: Any,
    results: list[Any] | None = None,
    alternatives: list[Any] | None = None,
) -> bool:
    """Does ``actual`` satisfy ``expected`` under ``matcher``?

    ``results`` are the results of the agent's earlier successful calls, for
    ``from_result:<call>#<pointer>`` matchers; ``alternatives`` are the other acceptable values of
    ``one_of`` and ``absent_or_one_of`` (absence itself is decided by the caller).
    """
    if matcher == "any":
        return actual is not None
    if matcher == "exact":
        return canonical_json(expected) == canonical_json(actual)
    if matcher in ("one_of", "absent_or_one_of"):
        return any(_same(option, actual) for option in [expected, *(alternatives or [])])
    if matcher == "set":
        if not isinstance(actual, list) or not isinstance(expected, list):
            return False
        left = sorted(canonical_json(normalize(v)) for v in expected)
        right = sorted(canonical_json(normalize(v)) for v in actual)
        return left == right
    if matcher == "ordered":
        return isinstance(expected, list) and _same(expected, actual)
    if matcher.startswith("from_result:"):
        try:
            return _same(resolve_from_result(matcher, (results or []).__getitem__), actual)
        except LookupError:
            return False
    return _same(expected, actual)
