"""Deterministic 18-digit decimal math against Python's math (and decimal) with the documented tolerances."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pytest

from rlrun.governance import detmath as dm

ONE = dm.ONE


def test_decimal_arithmetic_rounds_half_to_even():
    assert dm.dec("1.5") == 3 * ONE // 2 and dm.dec(0.1) == ONE // 10  # floats through their shortest repr
    half_unit = 5 * 10**17  # 0.5 * 10^-18 after the product
    assert dm.dec_mul(1, half_unit) == 0 and dm.dec_mul(3, half_unit) == 2  # 0.5 -> 0, 1.5 -> 2
    assert dm.dec_quo(ONE, 3 * ONE) == 333_333_333_333_333_333
    assert dm.dec_quo(2 * ONE, 3 * ONE) == 666_666_666_666_666_667


def test_integer_sqrt_within_one_unit():
    values = [0, 1, 2, 3, ONE, 2 * ONE, 4 * ONE, 10**30 * ONE, 12345678901234567890123, 10**-0]
    values += [int(v) for v in np.geomspace(1, 1e48, 200)]
    for x in values:
        root = dm.integer_sqrt(x)
        assert abs(root - math.isqrt(x * ONE)) <= 1, x
    assert dm.integer_sqrt(4 * ONE) == 2 * ONE and dm.integer_sqrt(ONE // 4) == ONE // 2  # exact squares
    with pytest.raises(ValueError):
        dm.integer_sqrt(-1)


def test_ln_1_plus_x_against_math_and_decimal():
    xs = [-1 + 1e-9, -0.999, -0.5, -1e-9, 0.0, 1e-12, 0.25, 0.5, 1.0, 2.0, 1e3, 1e6, 1e12]
    xs += np.geomspace(1e-9, 1e12, 150).tolist() + (-np.geomspace(1e-9, 0.999, 60)).tolist()
    with localcontext() as ctx:
        ctx.prec = 50
        for x in xs:
            inp = dm.dec(Decimal(x))  # the float's exact value, rounded to 18 decimals
            ours = dm.ln_1_plus_x(inp)
            exact = (dm.to_decimal(inp) + 1).ln()
            assert abs(dm.to_decimal(ours) - exact) <= Decimal("1e-15"), x
            if (
                x >= -0.99
            ):  # nearer -1 the 18-digit rounding of the input itself dominates (d ln = dx / (1+x))
                ref = math.log1p(x)
                assert abs(dm.to_float(ours) - ref) <= 1e-15 + 4e-16 * abs(ref), x
    assert dm.ln_1_plus_x(0) == 0 and dm.ln_1_plus_x(ONE) == dm.LN2
    with pytest.raises(ValueError):
        dm.ln_1_plus_x(-ONE)


def test_exp_against_math():
    for x in np.linspace(-40.0, 40.0, 801).tolist() + [0.0, 1e-12, -1e-12]:
        ours = dm.to_float(dm.exp_approx(dm.dec(Decimal(x))))  # the float's exact value
        ref = math.exp(x)
        assert abs(ours - ref) <= 1e-15 * ref + 2e-18, x
    assert dm.exp_approx(0) == ONE
    assert abs(dm.exp_approx(ONE) - 2_718281828459045235) <= 100  # e to 18 digits
    with pytest.raises(dm.DetMathOverflowError):
        dm.exp_approx(dm.dec(250))


def test_sigmoid_symmetric_bounded_monotone():
    xs = np.linspace(-40.0, 40.0, 1601).tolist()
    raw = [dm.sigmoid_approx(dm.dec(x)) for x in xs]
    for x, s in zip(xs, raw, strict=True):
        assert abs(dm.to_float(s) - 1.0 / (1.0 + math.exp(-x))) <= 2e-16, x
        assert 0 <= s <= ONE
        assert s + dm.sigmoid_approx(-dm.dec(x)) == ONE  # exact symmetry
    assert all(b >= a for a, b in zip(raw, raw[1:], strict=False))
    assert dm.sigmoid_approx(0) == ONE // 2


def test_reputation_multiplier_maps_unit_interval_to_half_to_two():
    assert dm.reputation_multiplier(0) == ONE // 2
    assert dm.reputation_multiplier(ONE) == 2 * ONE
    assert abs(dm.reputation_multiplier(ONE // 2) - 5 * ONE // 4) <= 1
    assert (
        dm.reputation_multiplier(-ONE) == ONE // 2 and dm.reputation_multiplier(3 * ONE) == 2 * ONE
    )  # clamped
    k = dm.REPUTATION_STEEPNESS
    sig = lambda z: 1.0 / (1.0 + math.exp(-z))  # noqa: E731
    grid = [m / 100 for m in range(101)]
    vals = [dm.reputation_multiplier(dm.dec(r)) for r in grid]
    assert all(b > a for a, b in zip(vals, vals[1:], strict=False))
    for r, v in zip(grid, vals, strict=True):
        ref = 0.5 + 1.5 * (sig(k * (r - 0.5)) - sig(-k / 2)) / (sig(k / 2) - sig(-k / 2))
        assert abs(dm.to_float(v) - ref) <= 1e-14


def test_results_are_deterministic_integers():
    """Golden values: any platform or Python version must reproduce these integers exactly."""
    assert dm.exp_approx(ONE) == 2718281828459045168
    assert dm.ln_1_plus_x(ONE) == 693147180559945309
    assert dm.integer_sqrt(2 * ONE) == 1414213562373095049
    assert dm.sigmoid_approx(ONE) == 731058578630004870
    assert dm.reputation_multiplier(3 * ONE // 4) == 1842509621894740224
    assert all(
        isinstance(f(ONE), int) for f in (dm.exp_approx, dm.ln_1_plus_x, dm.integer_sqrt, dm.sigmoid_approx)
    )
