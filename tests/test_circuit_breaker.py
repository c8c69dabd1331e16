"""Circuit breaker driven by crafted block-time sequences, boundaries included (exactly 2x, exactly 50%)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from rlrun.errors import ConfigError
from rlrun.governance.circuit_breaker import CircuitBreaker, exact_fraction

TARGET = 5000


def feed(breaker: CircuitBreaker, deltas: list[int], target: int = TARGET, start: int = 1_000_000) -> list:
    """Record blocks whose time deltas are `deltas` (the first call also records a starting block) and
    evaluate after each block, as the chain does; returns the statuses."""
    if not breaker._timestamps:
        breaker.record_block(start, target)
    t = breaker._timestamps[-1]
    out = []
    for d in deltas:
        t += d
        breaker.record_block(t, target)
        out.append(breaker.evaluate())
    return out


def test_exactly_twice_the_target_is_healthy():
    b = CircuitBreaker(window=50, threshold=0.5)
    status = feed(b, [2 * TARGET] * 50)[-1]
    assert (status.healthy, status.total, status.triggered, b.active) == (50, 50, False, False)
    b2 = CircuitBreaker(window=50, threshold=0.5)
    statuses = feed(b2, [2 * TARGET + 1] * 50)
    assert statuses[0].triggered and statuses[-1].healthy == 0 and b2.active


def test_zero_and_negative_deltas_are_unhealthy():
    b = CircuitBreaker(window=4, threshold=0.5)
    status = feed(b, [0, -5, 1, 3000])[-1]
    assert (status.healthy, status.total) == (2, 4)
    assert not status.below_threshold  # exactly half


def test_exactly_half_healthy_does_not_trigger_one_less_does():
    b = CircuitBreaker(window=50, threshold=0.50)
    status = feed(b, [TARGET] * 25 + [3 * TARGET] * 25)[-1]
    assert (status.healthy, status.total, status.fraction) == (25, 50, 0.5)
    assert not status.below_threshold and not b.active
    status = feed(b, [3 * TARGET])[-1]  # window slides: 24 healthy of 50
    assert (status.healthy, status.total, status.triggered, status.active) == (24, 50, True, True)
    assert b.trigger_count == 1


def test_only_the_last_window_counts_and_it_clears_on_recovery():
    b = CircuitBreaker(window=50, threshold=0.5)
    statuses = feed(b, [11_000] * 60)
    assert statuses[0].triggered and sum(s.triggered for s in statuses) == 1  # one event, not one per block
    assert b.active and statuses[-1].healthy == 0
    recovery = feed(b, [TARGET] * 50)
    cleared_at = [i for i, s in enumerate(recovery) if s.cleared]
    assert cleared_at == [24]  # the 25th healthy block makes 25/50 = 50%, no longer below the threshold
    assert not b.active and all(s.active for s in recovery[:24])
    assert recovery[-1].healthy == 50


def test_threshold_comparison_is_exact_decimal():
    # 3 of 10 healthy at threshold 0.3: 0.3 as a float times 10 is 3.0000000000000004, which a float
    # comparison would count as "below"; the seed's LegacyDec comparison says it is not.
    b = CircuitBreaker(window=10, threshold=0.3)
    assert b.threshold == Fraction(3, 10) == exact_fraction("0.30")
    status = feed(b, [TARGET] * 3 + [0] * 7)[-1]
    assert (status.healthy, status.total, status.below_threshold) == (3, 10, False)
    status = feed(b, [0])[-1]
    assert status.healthy == 2 and status.triggered


def test_partial_window_uses_the_deltas_there_are():
    b = CircuitBreaker(window=50, threshold=0.5)
    assert not b.evaluate().evaluated  # no block pair yet: nothing to judge
    b.record_block(0, TARGET)
    assert not b.evaluate().evaluated
    status = feed(b, [TARGET, 40_000, 40_000])[-1]
    assert (status.healthy, status.total, status.triggered) == (1, 3, True)


def test_blocks_are_judged_against_the_target_they_were_made_under():
    b = CircuitBreaker(window=10, threshold=0.5)
    feed(b, [600] * 10, target=250)  # 600 ms blocks under a 250 ms target: all unhealthy
    assert b.active
    status = feed(b, [5000] * 4, target=5000)[-1]  # after the revert: 6 old unhealthy blocks remain
    assert (status.healthy, status.total, status.active) == (4, 10, True)
    assert b.count_healthy(target_block_time_ms=5000) == (10, 10)  # one target for all: the literal form
    status = feed(b, [5000], target=5000)[-1]
    assert status.cleared and status.healthy == 5


def test_state_roundtrip_and_config_errors():
    b = CircuitBreaker(window=5, threshold="0.6")
    feed(b, [TARGET, 0, 0, 0])
    state = b.state_dict()
    c = CircuitBreaker(window=5, threshold="0.6")
    c.load_state_dict(state)
    assert c.deltas() == b.deltas() and c.active == b.active and c.trigger_count == b.trigger_count
    with pytest.raises(ConfigError):
        CircuitBreaker(window=0)
    with pytest.raises(ConfigError):
        CircuitBreaker(threshold=1.5)
    with pytest.raises(ConfigError):
        CircuitBreaker(threshold="half")
    d = CircuitBreaker(window=3)
    d.record_block(0)
    d.record_block(100)
    with pytest.raises(ValueError):
        d.evaluate()  # no target recorded and none given
    assert d.evaluate(TARGET).healthy == 1
