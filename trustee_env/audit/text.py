"""Does a text mention a value? The one loose comparison the probes use (case, punctuation, spacing aside)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

__all__ = ["mentions", "plain"]

_NOT_WORD = re.compile(r"[\W_]+")


def plain(text: str) -> str:
    """NFKC, casefolded, every run of punctuation and spacing made one space."""
    return " ".join(_NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split())


def mentions(text: str, value: Any) -> bool:
    """True when ``value`` (as text) appears in ``text`` on word boundaries, after :func:`plain` on both."""
    needle = plain(str(value))
    return bool(needle) and f" {needle} " in f" {plain(text)} "
