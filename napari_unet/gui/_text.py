"""Small text helpers for the widgets' messages."""

from __future__ import annotations


def plural(n: int, noun: str) -> str:
    """``"1 pair"``, ``"2 pairs"``: a count with its noun, singular or plural."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
