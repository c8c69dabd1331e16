"""Deterministic int64 fixed-point MLP inference (seed 001's on-chain policy network).

Why integers: validators on different hardware must compute bit-identical actions; IEEE-754 float results
depend on instruction selection (FMA, SIMD reduction order), integer arithmetic does not.

Number format: a real value v is the int64 round(v * SCALE), SCALE = 10^8 (so |v| < 92,233,720,368).

Arithmetic (Go semantics, stated because Python's `//` and `%` floor while Go truncates):
    q = a / b   truncates toward zero          (-7 / 2 == -3)
    r = a % b   has the sign of a              (-7 % 2 == -1),   a == q*b + r
    fixMul(a, b) = (a / S) * b + (a % S) * b / S
The split keeps (a % S) * b < 2^63 whenever |b| < 2^63 / S (|b| < 922.3 in real units); a layer computes
    y_j = b_j + sum_i fixMul(x_i, W_ji)            (x = activation, W = weight: |W| is what must stay small)
and then ReLU (max(0, y)) or tanh. Every product and every pre-activation sum is checked: a value outside
int64 raises FixedPointOverflowError naming the layer and unit, it never wraps. Because int64 addition is
exact whenever the final sum fits, the result equals a Go loop accumulating in any order.

tanh (output layer):
- "pade" (default): Lambert's continued fraction tanh(x) = x/(1 + x^2/(3 + x^2/(5 + ... + x^2/25))), i.e. the
  convergent of depth 12, a rational function that is odd and monotone increasing on [0, 12] and reaches 1
  at x = 8.9477. It is evaluated EXACTLY in Python integers and rounded once (toward zero), then clamped to
  +-S (for |x| >= 9 the result is S). floor of a monotone function is monotone, so the integer function is
  monotone too. Max |approx - tanh| = 3.4e-8 over all x (at the clamp point); with the final rounding the
  fixed-point result is within TANH_MAX_ERROR = 5e-8 (5 units of 10^-8) of tanh everywhere.
- "seed_compat": the seed's formula x(3S - x^2)/(3S + x^2) for |x| <= 2.5S, +-S otherwise, evaluated with
  fixMul and truncating division. In real units that is x(3 - x^2)/(3 + x^2): 0.5 at x = 1, 0 at sqrt(3),
  negative on (sqrt(3), 2.5], then a jump to +1. It is NOT a tanh approximation; it exists only to
  reproduce weights that were deployed with it.

The numpy engine (`FixedPointMLP.forward`) and the pure-Python reference (`FixedPointMLP.forward_reference`,
a literal transcription of the Go loops) give identical integers; tests check that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.errors import CheckpointError, ConfigError, RlrunError

SCALE = 10**8
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
#: largest |weight| (raw int) for which (x % S) * w can never overflow: |x % S| <= S - 1
MAX_ABS_WEIGHT = INT64_MAX // (SCALE - 1)
TANH_MODES = ("pade", "seed_compat")
ACTIVATIONS = ("relu", "tanh", "identity")
TANH_DEPTH = 12
#: bound on |tanh_fixed(X)/S - tanh(X/S)| for mode "pade" (approximation 3.4e-8 + one rounding unit)
TANH_MAX_ERROR = 5e-8
TANH_CLAMP = 9 * SCALE
FORMAT = "rlrun-fixedpoint-mlp"
FORMAT_VERSION = 1


class FixedPointOverflowError(RlrunError, ArithmeticError):
    """An intermediate of the integer engine left the int64 range (it is reported, never wrapped)."""


# ---- scalar Go-style integer arithmetic (the specification) ----------------------------------------------


def go_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's `/` on int64."""
    if b == 0:
        raise ZeroDivisionError("go_div by zero")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def go_mod(a: int, b: int) -> int:
    """Remainder with the sign of the dividend, as Go's `%`: a == go_div(a, b) * b + go_mod(a, b)."""
    return a - go_div(a, b) * b


def _check64(value: int, what: str) -> int:
    if value > INT64_MAX or value < INT64_MIN:
        raise FixedPointOverflowError(f"int64 overflow in {what}: {value}")
    return value


def fix_mul(a: int, b: int) -> int:
    """fixMul(a, b) = (a / S) * b + (a % S) * b / S with every int64 intermediate checked."""
    hi = _check64(go_div(a, SCALE) * b, "fixMul (a/S)*b")
    lo = _check64(go_mod(a, SCALE) * b, "fixMul (a%S)*b")
    return _check64(hi + go_div(lo, SCALE), "fixMul sum")


def relu(x: int) -> int:
    return x if x > 0 else 0


def _tanh_pade_pos(x: int) -> int:
    """floor(S * cf(x/S)) for 0 <= x < TANH_CLAMP, exact: cf = depth-12 continued fraction of tanh."""
    s2 = SCALE * SCALE
    x2 = x * x
    num, den = 2 * TANH_DEPTH + 1, 1  # v_d = (2d + 1) / 1
    for k in range(TANH_DEPTH, 0, -1):
        # v_{k-1} = (2k - 1) + x^2 / (S^2 v_k)  with v_k = num / den
        num, den = (2 * k - 1) * s2 * num + x2 * den, s2 * num
    # tanh ~ (x / S) / v_0 = x * den / (S * num);  times S -> x * den / num
    return min(SCALE, (x * den) // num)


def _tanh_seed_pos(x: int) -> int:
    if x > (5 * SCALE) // 2:
        return SCALE
    x2 = fix_mul(x, x)
    num = fix_mul(x, 3 * SCALE - x2)
    return go_div(_check64(num * SCALE, "tanh num*S"), 3 * SCALE + x2)


def tanh_fixed(x: int, mode: str = "pade") -> int:
    """Fixed-point tanh of a raw int (see module doc for the two modes); odd by construction."""
    if mode not in TANH_MODES:
        raise ConfigError(f"tanh={mode!r} is not supported; allowed: {', '.join(TANH_MODES)}")
    x = int(x)
    sign, ax = (-1, -x) if x < 0 else (1, x)
    if mode == "pade":
        y = SCALE if ax >= TANH_CLAMP else _tanh_pade_pos(ax)
    else:
        y = _tanh_seed_pos(ax)
    return sign * y


# ---- conversions -------------------------------------------------------------------------------------


def to_fixed(values: Any) -> np.ndarray:
    """Float -> int64 at scale S, rounding half to even. float64 multiplication and rint are exactly
    specified by IEEE-754, so this is deterministic; the integer path starts here."""
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise FixedPointOverflowError("cannot convert a non-finite value to fixed point")
    scaled = np.rint(arr * SCALE)
    if arr.size and np.max(np.abs(scaled)) >= 2.0**63:
        raise FixedPointOverflowError(
            f"value {np.max(np.abs(arr)):.6g} is outside the int64 fixed-point range"
        )
    return scaled.astype(np.int64)


def from_fixed(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).astype(np.float64) / SCALE


def decimal_to_fixed(text: str) -> int:
    """A LegacyDec-style decimal string ("12.345000000000000000") -> raw int at scale S, truncated toward
    zero, without going through float."""
    s = text.strip()
    neg = s.startswith("-")
    s = s.lstrip("+-")
    whole, _, frac = s.partition(".")
    if not (whole or frac) or not (whole or "0").isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"not a decimal number: {text!r}")
    digits = (frac + "0" * 8)[:8]
    raw = int(whole or "0") * SCALE + int(digits)
    return _check64(-raw if neg else raw, f"decimal {text!r}")


# ---- vectorised numpy helpers ----------------------------------------------------------------------------


def np_go_div(a: np.ndarray, b: int) -> np.ndarray:
    """Elementwise truncating division by a positive constant (numpy's // floors)."""
    if b <= 0:
        raise ValueError("np_go_div needs a positive divisor")
    a = np.asarray(a, dtype=np.int64)
    return (a + np.where(a < 0, b - 1, 0)) // b


def _exact_sum_last_axis(terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact sum over the last axis of int64 terms: returns (high, low) with sum = high * 2^32 + low,
    0 <= low < 2^32, computed without any int64 overflow for up to 2^31 terms."""
    hi = terms >> 32
    lo = terms & 0xFFFFFFFF
    s_lo = lo.sum(axis=-1)
    s_hi = hi.sum(axis=-1) + (s_lo >> 32)
    return s_hi, s_lo & 0xFFFFFFFF


@dataclass
class Layer:
    weight: np.ndarray  # int64 (out, in)
    bias: np.ndarray  # int64 (out,)
    activation: str  # relu | tanh | identity

    @property
    def in_dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_dim(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class FixedPointMLP:
    """A Linear/activation stack in int64 fixed point; the deployable form of an actor network."""

    layers: list[Layer]
    tanh: str = "pade"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tanh not in TANH_MODES:
            raise ConfigError(f"tanh={self.tanh!r} is not supported; allowed: {', '.join(TANH_MODES)}")
        if not self.layers:
            raise ConfigError("a fixed-point MLP needs at least one layer")
        for k, layer in enumerate(self.layers):
            layer.weight = np.ascontiguousarray(layer.weight, dtype=np.int64)
            layer.bias = np.ascontiguousarray(layer.bias, dtype=np.int64)
            if layer.activation not in ACTIVATIONS:
                raise ConfigError(
                    f"layer {k} activation {layer.activation!r}; allowed: {', '.join(ACTIVATIONS)}"
                )
            if layer.weight.ndim != 2 or layer.bias.shape != (layer.out_dim,):
                raise ConfigError(
                    f"layer {k}: weight {layer.weight.shape} and bias {layer.bias.shape} mismatch"
                )
            if k and layer.in_dim != self.layers[k - 1].out_dim:
                raise ConfigError(
                    f"layer {k} takes {layer.in_dim} inputs but layer {k - 1} gives "
                    f"{self.layers[k - 1].out_dim}"
                )
            if layer.weight.size and int(np.abs(layer.weight).max()) > MAX_ABS_WEIGHT:
                raise FixedPointOverflowError(
                    f"layer {k} has a weight of magnitude {np.abs(layer.weight).max() / SCALE:.6g}; "
                    f"fixMul needs |w| <= {MAX_ABS_WEIGHT / SCALE:.6g}"
                )
        # constants of the hot loop: offset that turns floor division into truncation for negative weights
        self._neg_offset = [np.where(lay.weight < 0, SCALE - 1, 0).astype(np.int64) for lay in self.layers]
        self._max_w = [int(np.abs(lay.weight).max()) if lay.weight.size else 0 for lay in self.layers]
        self._max_b = [int(np.abs(lay.bias).max()) if lay.bias.size else 0 for lay in self.layers]

    # ---- shape / format ----------------------------------------------------------------------------
    @property
    def layer_sizes(self) -> list[int]:
        return [self.layers[0].in_dim] + [lay.out_dim for lay in self.layers]

    @property
    def activations(self) -> list[str]:
        return [lay.activation for lay in self.layers]

    @property
    def num_params(self) -> int:
        return sum(lay.weight.size + lay.bias.size for lay in self.layers)

    def flatten(self) -> np.ndarray:
        """The on-chain vector: per layer, weight[out][in] row-major, then bias[out]."""
        parts = []
        for lay in self.layers:
            parts += [lay.weight.reshape(-1), lay.bias]
        return np.concatenate(parts).astype(np.int64)

    @classmethod
    def from_flat(
        cls,
        vector: Any,
        layer_sizes: Sequence[int],
        activations: Sequence[str],
        tanh: str = "pade",
        meta: dict[str, Any] | None = None,
    ) -> FixedPointMLP:
        vec = np.asarray(vector, dtype=np.int64).reshape(-1)
        sizes = [int(s) for s in layer_sizes]
        if len(activations) != len(sizes) - 1:
            raise ConfigError(
                f"{len(sizes) - 1} layers need {len(sizes) - 1} activations, got {len(activations)}"
            )
        expected = sum(o * i + o for i, o in zip(sizes[:-1], sizes[1:], strict=True))
        if vec.size != expected:
            raise CheckpointError(
                f"fixed-point vector has {vec.size} values, layer sizes {sizes} need {expected}"
            )
        layers, pos = [], 0
        for (i, o), act in zip(zip(sizes[:-1], sizes[1:], strict=True), activations, strict=True):
            w = vec[pos : pos + o * i].reshape(o, i)
            pos += o * i
            b = vec[pos : pos + o]
            pos += o
            layers.append(Layer(w.copy(), b.copy(), str(act)))
        return cls(layers, tanh=tanh, meta=dict(meta or {}))

    @classmethod
    def from_float(
        cls,
        weights: Sequence[Any],
        biases: Sequence[Any],
        activations: Sequence[str],
        tanh: str = "pade",
        meta: dict[str, Any] | None = None,
    ) -> FixedPointMLP:
        """Quantise float weights (round half to even at scale S)."""
        layers = [
            Layer(to_fixed(w), to_fixed(b), a) for w, b, a in zip(weights, biases, activations, strict=True)
        ]
        return cls(layers, tanh=tanh, meta=dict(meta or {}))

    # ---- inference ---------------------------------------------------------------------------------
    def forward(self, x: Any) -> np.ndarray:
        """Raw int64 inputs (N, in) or (in,) -> raw int64 outputs. Integer operations only."""
        arr = np.asarray(x)
        if arr.dtype.kind not in "iu":
            raise TypeError("FixedPointMLP.forward takes raw int64 inputs; convert with to_fixed() first")
        single = arr.ndim == 1
        h = np.atleast_2d(arr).astype(np.int64)
        if h.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"expected {self.layer_sizes[0]} inputs, got {h.shape[1]}")
        for k, lay in enumerate(self.layers):
            h = self._linear(k, h)
            if lay.activation == "relu":
                h = np.maximum(h, 0)
            elif lay.activation == "tanh":
                h = self._tanh_array(h)
        return h[0] if single else h

    def _tanh_array(self, h: np.ndarray) -> np.ndarray:
        out = [tanh_fixed(v, self.tanh) for v in h.reshape(-1).tolist()]
        return np.asarray(out, dtype=np.int64).reshape(h.shape)

    def _linear(self, k: int, x: np.ndarray) -> np.ndarray:
        lay = self.layers[k]
        w = lay.weight
        n_in = lay.in_dim
        xq = np_go_div(x, SCALE)  # x / S  (Go)
        xr = x - xq * SCALE  # x % S  (Go), |xr| < S
        max_xq = int(np.abs(xq).max()) if xq.size else 0
        # worst case of |fixMul| per term and of the whole sum, in exact Python ints
        term_bound = max_xq * self._max_w[k] + self._max_w[k]
        safe = term_bound * n_in + self._max_b[k] <= INT64_MAX
        if not safe:
            return self._linear_checked(k, xq, xr)
        out = np.empty((x.shape[0], lay.out_dim), dtype=np.int64)
        chunk = max(1, 2_000_000 // max(1, w.size))
        nonneg = bool((xr >= 0).all())
        for s in range(0, x.shape[0], chunk):
            r = xr[s : s + chunk, None, :]
            p = r * w[None]  # (a % S) * b, |.| < 2^63 by the weight bound
            if nonneg:  # sign of p is the sign of w: truncation offset is a constant
                p += self._neg_offset[k]
            else:
                p += np.where(p < 0, SCALE - 1, 0)
            p //= SCALE
            acc = p.sum(axis=-1)
            if max_xq:
                acc += xq[s : s + chunk] @ w.T  # sum_i (a / S) * b: exact, bounded by `safe`
            out[s : s + chunk] = acc + lay.bias
        return out

    def _linear_checked(self, k: int, xq: np.ndarray, xr: np.ndarray) -> np.ndarray:
        """Slow path when the cheap bound cannot exclude overflow: exact elementwise checks."""
        lay = self.layers[k]
        w = lay.weight
        out = np.empty((xq.shape[0], lay.out_dim), dtype=np.int64)
        absw = np.abs(w)
        limit = np.where(absw > 0, INT64_MAX // np.maximum(absw, 1), INT64_MAX)
        for n in range(xq.shape[0]):
            q, r = xq[n][None, :], xr[n][None, :]
            bad = np.abs(q) > limit
            if bad.any():
                j, i = np.argwhere(bad)[0]
                raise FixedPointOverflowError(
                    f"int64 overflow in layer {k} unit {j}: fixMul (a/S)*b with "
                    f"input {i} = {int(q[0, i] * SCALE + r[0, i])}"
                )
            hi = q * w
            lo = np_go_div(r * w, SCALE)
            over = ((lo > 0) & (hi > INT64_MAX - lo)) | ((lo < 0) & (hi < INT64_MIN - lo))
            if over.any():
                j, _ = np.argwhere(over)[0]
                raise FixedPointOverflowError(f"int64 overflow in layer {k} unit {j}: fixMul sum")
            terms = np.concatenate([hi + lo, lay.bias[:, None]], axis=1)
            s_hi, s_lo = _exact_sum_last_axis(terms)
            bad_sum = (s_hi >= 2**31) | (s_hi < -(2**31))
            if bad_sum.any():
                j = int(np.argmax(bad_sum))
                raise FixedPointOverflowError(f"int64 overflow in layer {k} unit {j}: pre-activation sum")
            out[n] = (s_hi << 32) + s_lo
        return out

    def forward_reference(self, x: Sequence[int]) -> list[int]:
        """The Go loops transcribed literally in Python ints: the specification the numpy path must match."""
        h = [int(v) for v in x]
        for k, lay in enumerate(self.layers):
            w, b = lay.weight.tolist(), lay.bias.tolist()
            nxt = []
            for j in range(lay.out_dim):
                s = b[j]
                for i in range(lay.in_dim):
                    s += fix_mul(h[i], w[j][i])
                nxt.append(_check64(s, f"layer {k} unit {j} pre-activation sum"))
            if lay.activation == "relu":
                nxt = [relu(v) for v in nxt]
            elif lay.activation == "tanh":
                nxt = [tanh_fixed(v, self.tanh) for v in nxt]
            h = nxt
        return h

    def act(self, obs: Any) -> np.ndarray:
        """Float observation(s) -> float action(s) through the integer engine (conversion at the edges)."""
        return from_fixed(self.forward(to_fixed(obs)))

    # ---- files -------------------------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        vec = self.flatten()
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "scale": SCALE,
            "dtype": "int64",
            "byteorder": "little",
            "layer_sizes": self.layer_sizes,
            "activations": self.activations,
            "tanh": self.tanh,
            "num_params": int(vec.size),
            "layout": "per layer: weight[out][in] row-major, then bias[out]",
            "fixmul": "y_j = b_j + sum_i fixMul(x_i, W_ji); fixMul(a,b) = (a/S)*b + (a%S)*b/S, "
            "Go truncating division",
            "checksum": "sha256:" + hashlib.sha256(vec.astype("<i8").tobytes()).hexdigest(),
            **self.meta,
        }

    def save(self, directory: Path | str, stem: str = "policy") -> tuple[Path, Path]:
        """Write <stem>.int64 (raw little-endian int64 vector) and <stem>.json (header with checksum)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        bin_path, json_path = out / f"{stem}.int64", out / f"{stem}.json"
        bin_path.write_bytes(self.flatten().astype("<i8").tobytes())
        json_path.write_text(json.dumps(self.header(), indent=2) + "\n")
        return bin_path, json_path

    @classmethod
    def load(cls, directory: Path | str, stem: str = "policy") -> FixedPointMLP:
        d = Path(directory)
        bin_path, json_path = d / f"{stem}.int64", d / f"{stem}.json"
        if not (bin_path.is_file() and json_path.is_file()):
            raise CheckpointError(f"{d} has no fixed-point export ({bin_path.name} + {json_path.name})")
        try:
            header = json.loads(json_path.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{json_path} is not valid JSON ({e})") from None
        if header.get("format") != FORMAT or int(header.get("scale", 0)) != SCALE:
            raise CheckpointError(f"{json_path} is not an {FORMAT} header with scale {SCALE}")
        raw = bin_path.read_bytes()
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if digest != header.get("checksum"):
            raise CheckpointError(
                f"{bin_path} does not match the checksum in {json_path.name} (corrupt export)"
            )
        vec = np.frombuffer(raw, dtype="<i8").astype(np.int64)
        known = {
            "format",
            "version",
            "scale",
            "dtype",
            "byteorder",
            "layer_sizes",
            "activations",
            "tanh",
            "num_params",
            "layout",
            "fixmul",
            "checksum",
        }
        meta = {k: v for k, v in header.items() if k not in known}
        return cls.from_flat(
            vec, header["layer_sizes"], header["activations"], header.get("tanh", "pade"), meta
        )


def mlp_param_count(layer_sizes: Sequence[int]) -> int:
    """Weights + biases of a fully connected stack, e.g. 25-256-256-5 -> 73,733."""
    return sum(int(i) * int(o) + int(o) for i, o in zip(layer_sizes[:-1], layer_sizes[1:], strict=True))
