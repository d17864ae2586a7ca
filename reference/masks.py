"""Masks: which keys a query sees in a pass.

Committed keys (and end-of-row tokens) are visible to every raster-later query under every
mask here; masks differ only in which *drafts* a query sees.
"""

from __future__ import annotations

from typing import Protocol

from .keys import Key


class Mask(Protocol):
    def is_visible(self, query_position: int, query_window: int, key: Key, key_window: int | None) -> bool: ...


class CausalMask:
    """Plain causal attention: every raster-earlier key, committed or draft (the AR visibility
    when the drafts are the committed prefix's continuation)."""

    def is_visible(self, query_position: int, query_window: int, key: Key, key_window: int | None) -> bool:
        return key.position < query_position


class RowCausalMask:
    """PJD's Row-Causal Mask (spec/masks.md): a query sees every committed raster-earlier key
    (and raster-earlier end-of-row tokens) and the raster-earlier drafts of its own window (its
    row), never the uncommitted drafts of another window."""

    def is_visible(self, query_position: int, query_window: int, key: Key, key_window: int | None) -> bool:
        if key.position >= query_position:
            return False
        return not key.is_draft or key_window == query_window
