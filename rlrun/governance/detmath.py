"""Deterministic math on 18-digit fixed-point decimals (seed 001's `mathutil`, LegacyDec semantics).

A value v is the Python int round(v * 10^18) (`PRECISION`), like cosmossdk.io/math.LegacyDec, which is an
arbitrary-precision big.Int with 18 decimals. Everything below is integer arithmetic, so results are
identical on every machine and Python version. `dec_mul`/`dec_quo` round half to even (LegacyDec's
"banker's" chopPrecisionAndRound); values whose raw int needs more than `MAX_DEC_BITS` bits (LegacyDec's
256 + 60-bit limit) raise DetMathOverflowError.

Functions and their accuracy (tests check these bounds against Python's math over the stated ranges):
- integer_sqrt(x)     Newton's method, start at a power of two >= sqrt(x), at most 100 iterations;
                      result within 1 unit (10^-18) of floor(sqrt(x)) for x in [0, 10^30].
- ln_1_plus_x(x)      ln(1+x) for x > -1: 1+x = m * 2^k with m in [0.75, 1.5), m^(1/4) by two
                      integer_sqrt's (|m^(1/4) - 1| < 0.107), 15-term Taylor series, times 4, plus k*ln2.
                      Absolute error <= 1e-15 for x in (-1 + 1e-9, 1e12].
- exp_approx(x)       e^x = 2^n * e^r, n = round(x / ln2), |r| <= ln2/2, 12-term Taylor series of e^r.
                      Relative error <= 1e-15 (plus 2e-18 absolute) for x in [-40, 40].
- sigmoid_approx(x)   1/(1+e^-x) for x >= 0 and 1 - sigmoid(-x) for x < 0 (the symmetry keeps e^-x <= 1);
                      absolute error <= 1e-16 for x in [-40, 40]; sigmoid(x) + sigmoid(-x) == 1 exactly.
- reputation_multiplier(r)  [0, 1] -> [0.5, 2.0]: 0.5 + 1.5 * (sig(k(r - 1/2)) - sig(-k/2)) /
                      (sig(k/2) - sig(-k/2)), k = 8: monotone, exactly 0.5 at r = 0 and 2.0 at r = 1,
                      1.25 at r = 1/2; inputs outside [0, 1] are clamped.
The seed states the iteration/term counts (100 Newton iterations, 15 and 12 Taylor terms) but not the
argument reductions; without them a 12-term Taylor series of e^x is off by 50% at x = 5, so the reductions
above are part of this implementation.
"""

from __future__ import annotations

from decimal import Decimal

PRECISION = 10**18
ONE = PRECISION
MAX_DEC_BITS = 256 + 60
SQRT_MAX_ITERATIONS = 100
LN_TERMS = 15
EXP_TERMS = 12
#: ln 2 to 18 decimals (0.693147180559945309417...), rounded
LN2 = 693147180559945309
REPUTATION_STEEPNESS = 8


class DetMathOverflowError(ArithmeticError):
    """A result does not fit the LegacyDec range."""


def _check(raw: int) -> int:
    if raw.bit_length() > MAX_DEC_BITS:
        raise DetMathOverflowError(f"decimal value needs {raw.bit_length()} bits (> {MAX_DEC_BITS})")
    return raw


def _round_div(num: int, den: int) -> int:
    """num / den rounded half to even (den != 0)."""
    if den < 0:
        num, den = -num, -den
    q, r = divmod(num, den)  # floor
    twice = 2 * r
    if twice > den or (twice == den and q % 2 == 1):
        q += 1
    return q


def dec(value: int | str | float | Decimal) -> int:
    """Parse a decimal (exactly, via its decimal string; floats through their shortest repr) to a raw int."""
    d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    scaled = d.scaleb(18)
    return _check(int(scaled.to_integral_value(rounding="ROUND_HALF_EVEN")))


def to_decimal(raw: int) -> Decimal:
    return Decimal(raw).scaleb(-18)


def to_float(raw: int) -> float:
    """For display and tests only; nothing in this module computes with floats."""
    return raw / PRECISION


def dec_mul(a: int, b: int) -> int:
    return _check(_round_div(a * b, PRECISION))


def dec_quo(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError("decimal division by zero")
    return _check(_round_div(a * PRECISION, b))


def integer_sqrt(x: int) -> int:
    """sqrt of a decimal by Newton's method z <- (z + x/z) / 2 on decimals, at most 100 iterations.

    Starting from a power of two above the root, the iterates decrease monotonically to the root; the
    loop stops when an iterate no longer decreases."""
    if x < 0:
        raise ValueError("integer_sqrt of a negative number")
    if x == 0:
        return 0
    n = x * PRECISION  # sqrt(x_real) * 10^18 == sqrt(x_raw * 10^18)
    z = 1 << ((n.bit_length() + 1) // 2)  # >= sqrt(n)
    for _ in range(SQRT_MAX_ITERATIONS):
        nxt = (z + dec_quo(x, z)) // 2 if z else 0
        if nxt >= z:
            break
        z = nxt
    return z


def ln_1_plus_x(x: int) -> int:
    """ln(1 + x) for x > -1 (decimals)."""
    y = ONE + x
    if y <= 0:
        raise ValueError("ln(1+x) needs x > -1")
    # 1 + x = m * 2^k, m in [0.75, 1.5): power-of-two scaling is exact except for the rounding of y / 2^k
    k = 0
    while (y >> k if k >= 0 else y << -k) >= 3 * ONE // 2:
        k += 1
    while (y >> k if k >= 0 else y << -k) < 3 * ONE // 4:
        k -= 1
    m = _round_div(y, 1 << k) if k > 0 else y << -k
    # two square roots: ln m = 4 ln m^(1/4), m^(1/4) in [0.93, 1.107)
    z = integer_sqrt(integer_sqrt(m)) - ONE
    # ln(1 + z) = z - z^2/2 + z^3/3 - ... (15 terms), |z| < 0.107: truncation error < 0.107^16/16
    total, power = 0, ONE
    for n in range(1, LN_TERMS + 1):
        power = dec_mul(power, z)
        term = _round_div(power, n)
        total += term if n % 2 else -term
    return _check(4 * total + k * LN2)


def exp_approx(x: int) -> int:
    """e^x (decimals): e^x = 2^n e^r with |r| <= ln2/2 and a 12-term Taylor series for e^r."""
    n = _round_div(x, LN2)
    r = x - n * LN2
    total, term = ONE, ONE
    for i in range(1, EXP_TERMS + 1):
        term = _round_div(dec_mul(term, r), i)
        total += term
    if n >= 0:
        return _check(total << n)
    return _round_div(total, 1 << -n)


def sigmoid_approx(x: int) -> int:
    """1 / (1 + e^-x) using exp of a non-positive argument only (no overflow, symmetric by construction)."""
    if x < 0:
        return ONE - sigmoid_approx(-x)
    return dec_quo(ONE, ONE + exp_approx(-x))


_SIG_HI = sigmoid_approx(REPUTATION_STEEPNESS * ONE // 2)
_SIG_LO = ONE - _SIG_HI  # sigmoid(-k/2)


def reputation_multiplier(r: int) -> int:
    """Reputation score in [0, 1] -> reward/power multiplier in [0.5, 2.0] along a normalised sigmoid."""
    r = min(max(r, 0), ONE)
    s = sigmoid_approx(REPUTATION_STEEPNESS * (r - ONE // 2))
    frac = dec_quo(s - _SIG_LO, _SIG_HI - _SIG_LO)
    return ONE // 2 + dec_mul(3 * ONE // 2, frac)
