"""Which new place in line is worth an edit of a waiting job's message."""

from __future__ import annotations

import pytest

from services.jobs.runner import place_moved


@pytest.mark.parametrize(
    ("shown", "now", "worth_it"),
    [
        (None, 412, True),  # nothing shown yet
        (412, 398, False),  # little news for an edit
        (412, 320, True),
        (10, 9, False),
        (10, 8, True),
        (3, 2, True),  # near the front every place counts
        (1, 2, True),  # pushed back (another member's turn came first): shown too
        (5, 5, False),
    ],
)
def test_a_new_place_is_shown_once_it_moved_by_a_fifth(shown: int | None, now: int, worth_it: bool) -> None:
    assert place_moved(now, shown) is worth_it
