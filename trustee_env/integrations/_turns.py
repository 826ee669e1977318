"""What every adapter does to a policy turn: cut it at the end-of-turn marker and the token budget."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["cut_turn"]


def cut_turn(ids: Sequence[int], eot: Sequence[int], limit: int) -> int:
    """Length of one policy turn: up to and including the first end-of-turn marker, at most ``limit`` tokens.

    Engines may stop on another EOS, or run on after the marker when it is not their stop token;
    the env must see exactly one turn, and the trainer must never get more than it asked for.
    """
    n, marker, head = len(eot), list(eot), list(ids[:limit])
    for end in range(n, len(head) + 1):
        if head[end - n : end] == marker:
            return end
    return len(head)
