"""Saving a change over what was read, for rows that commands running at once may change (in one process or two).

A command reads the stored value, computes its change from it, and saves only if the stored value is still the one
it read (the store's compare-and-set: `replace_guild_settings`, `replace_user_prefs`); else it reads again and
redoes the change over the newer value. Two changes at once both keep theirs, instead of the later save undoing
the earlier one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.store.base import StoreError

SAVE_ATTEMPTS = 5  # reads and saves of one change, while other changes keep coming in between

Stored = TypeVar("Stored")
Changed = TypeVar("Changed")


async def save_over_what_was_read(
    read: Callable[[], Awaitable[Stored]],
    change: Callable[[Stored], Changed],
    save: Callable[[Changed, Stored], Awaitable[bool]],
    *,
    what: str,
) -> Changed:
    """`change(read())` saved with `save(changed, over=stored)`, which returns False (saving nothing) when the
    stored value is no longer the one read; then done again. `change` may refuse (BadInput). Returns what was
    saved; StoreError names `what` when other changes kept coming in between."""
    for _attempt in range(SAVE_ATTEMPTS):
        stored = await read()
        changed = change(stored)
        if await save(changed, stored):
            return changed
    raise StoreError(f"{what} kept changing while being saved")
