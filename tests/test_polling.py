import random
from collections.abc import Callable

import pytest

from services.cometapi.polling import DurationStats, PollTuning
from services.cometapi.predictions import Progress

TUNING = PollTuning(fine_interval=0.4, min_interval=0.1, max_interval=5.0)


def test_prior_window_until_enough_observations():
    stats = DurationStats({"m": (5.0, 15.0)}, TUNING)
    assert stats.window("m") == (5.0, 15.0)
    assert stats.window("unknown") == TUNING.default_window
    rng = random.Random(1)
    for _ in range(60):
        stats.observe("m", rng.uniform(1.0, 2.0))
    low, high = stats.window("m")
    assert 1.0 <= low < 1.2
    assert high == 15.0  # never below the prior's high end


def test_learned_window_shrinks_the_low_end_but_keeps_the_prior_high_end():
    """The first predictions to finish are the fast ones: they must not make the poller give up early."""
    stats = DurationStats({"m": (2.0, 10.0)}, TUNING)
    for seconds in (5.0, 5.2, 5.4, 5.5, 5.6, 5.8, 6.0, 6.1):
        stats.observe("m", seconds)
    low, high = stats.window("m")
    assert 5.0 <= low < 5.3
    assert high == 10.0
    for _ in range(64):
        stats.observe("m", 14.0)
    assert stats.window("m")[1] == pytest.approx(14.0)


def test_plan_waits_for_the_window_then_polls_finely_then_backs_off():
    plan = DurationStats({"m": (3.0, 6.0)}, TUNING).plan("m")
    assert plan.next_delay(0.0) == pytest.approx(3.0)
    assert plan.next_delay(4.0) == pytest.approx(0.4)
    tail = [plan.next_delay(7.0) for _ in range(10)]
    assert tail[0] == pytest.approx(0.4)
    assert tail == sorted(tail)
    assert tail[-1] == pytest.approx(5.0)


def test_first_poll_never_later_than_max_interval():
    plan = DurationStats({"slow": (60.0, 120.0)}, TUNING).plan("slow")
    assert plan.next_delay(0.0) == pytest.approx(5.0)


def test_tqdm_eta_jumps_ahead_but_not_past_max():
    plan = DurationStats({"m": (1.0, 30.0)}, TUNING).plan("m")
    assert plan.next_delay(2.0, Progress(percent=10, step=3, total=28, seconds_left=2.5)) == pytest.approx(2.5)
    assert plan.next_delay(2.0, Progress(percent=10, step=3, total=28, seconds_left=50)) == pytest.approx(5.0)
    assert plan.next_delay(2.0, Progress(percent=99, step=27, total=28, seconds_left=0.05)) == pytest.approx(0.4)


def test_inside_the_window_polls_space_out_with_the_time_run():
    plan = DurationStats({"slow": (10.0, 40.0)}, TUNING).plan("slow")
    assert plan.next_delay(10.0) == pytest.approx(1.0)
    assert plan.next_delay(30.0) == pytest.approx(3.0)
    quick = DurationStats({"quick": (1.0, 3.0)}, TUNING).plan("quick")
    assert quick.next_delay(2.0) == pytest.approx(0.4)  # never closer than the fine interval


def _gets_and_delay(schedule: Callable[[], Callable[[float], float]], durations: list[float]) -> tuple[int, float]:
    """GETs made, and the mean wait between done and noticed, when each prediction is polled by a fresh
    `schedule()` (elapsed seconds -> seconds to the next GET)."""
    gets, late = 0, 0.0
    for done in durations:
        next_delay, t = schedule(), 0.0
        while t < done:
            t += next_delay(t)
            gets += 1
        late += t - done
    return gets, late / len(durations)


@pytest.mark.parametrize(("window", "spread"), [((5.0, 15.0), (5.0, 15.0)), ((10.0, 40.0), (12.0, 38.0))])
def test_the_plan_costs_far_fewer_gets_than_a_fixed_interval_for_a_small_share_of_delay(
    window: tuple[float, float], spread: tuple[float, float]
) -> None:
    """Against a GET every 0.5 s on the same durations: under half the GETs, and a finished image waits on
    average under a twelfth of the mean duration to be noticed."""
    rng = random.Random(7)
    durations = [rng.uniform(*spread) for _ in range(500)]
    stats = DurationStats({"m": window}, TUNING)

    plan_gets, plan_late = _gets_and_delay(lambda: stats.plan("m").next_delay, durations)
    fixed_gets, _ = _gets_and_delay(lambda: lambda _t: 0.5, durations)
    assert plan_gets < 0.5 * fixed_gets
    assert plan_late < sum(durations) / len(durations) / 12
