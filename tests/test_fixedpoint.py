"""Fixed-point policy engine: parameter count, Go division semantics, fixMul, tanh accuracy/monotonicity,
overflow detection, bit-identity of the numpy engine with the literal reference, file format."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlrun.agents.nets import mlp
from rlrun.deploy.fixedpoint import (
    INT64_MAX,
    MAX_ABS_WEIGHT,
    SCALE,
    TANH_MAX_ERROR,
    FixedPointMLP,
    FixedPointOverflowError,
    Layer,
    decimal_to_fixed,
    fix_mul,
    from_fixed,
    go_div,
    go_mod,
    mlp_param_count,
    np_go_div,
    relu,
    tanh_fixed,
    to_fixed,
)
from rlrun.errors import CheckpointError, ConfigError


def seed_network(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return mlp(25, [256, 256], 5, output_activation="tanh")


def engine_from(net: torch.nn.Sequential, tanh: str = "pade") -> FixedPointMLP:
    from rlrun.deploy.export import sequential_layers

    w, b, a = sequential_layers(net)
    return FixedPointMLP.from_float(w, b, a, tanh=tanh)


def golden_net() -> FixedPointMLP:
    """Weights from an integer formula (no RNG), so the expected outputs below hold on any platform."""
    sizes, layers, k = [4, 6, 5, 3], [], 0
    for i, o in zip(sizes[:-1], sizes[1:], strict=True):
        w = []
        for _ in range(o):
            row = []
            for _ in range(i):
                k += 1
                row.append((k * 7919 + 13) % 20001 * 10**3 - 10**7)
            w.append(row)
        b = [((j * 104729 + 7) % 2001 - 1000) * 10**4 for j in range(o)]
        layers.append(Layer(np.array(w, dtype=np.int64), np.array(b, dtype=np.int64), "relu"))
    layers[-1].activation = "tanh"
    return FixedPointMLP(layers)


def test_seed_mlp_has_exactly_73733_parameters():
    net = seed_network()
    eng = engine_from(net)
    assert eng.layer_sizes == [25, 256, 256, 5]
    assert eng.activations == ["relu", "relu", "tanh"]
    assert eng.num_params == 73_733 == mlp_param_count([25, 256, 256, 5])
    assert eng.num_params == sum(p.numel() for p in net.parameters())
    assert eng.flatten().dtype == np.int64 and eng.flatten().size == 73_733


def test_go_division_truncates_toward_zero():
    assert (go_div(-7, 2), go_mod(-7, 2)) == (-3, -1)  # Python: -7 // 2 == -4, -7 % 2 == 1
    assert (go_div(7, -2), go_mod(7, -2)) == (-3, 1)
    assert (go_div(-7, -2), go_mod(-7, -2)) == (3, -1)
    assert go_div(-(SCALE - 1), SCALE) == 0 and go_mod(-(SCALE - 1), SCALE) == -(SCALE - 1)
    rng = np.random.default_rng(0)
    a = rng.integers(-(10**17), 10**17, 5000)
    a[:6] = [-7, -1, 0, 1, 7, -2 * SCALE - 1]
    expected = [go_div(int(v), SCALE) for v in a]
    assert np_go_div(a, SCALE).tolist() == expected
    assert all(go_div(int(v), SCALE) * SCALE + go_mod(int(v), SCALE) == int(v) for v in a[:500])


def test_fix_mul_is_the_truncated_exact_product():
    # (a / S) * b + (a % S) * b / S == trunc(a * b / S) for every a, b (both parts share the product's sign)
    assert fix_mul(-150_000_000, 300_000_000) == -450_000_000  # -1.5 * 3.0
    assert fix_mul(-1, 1) == 0  # floor division would give -1
    assert fix_mul(1, -1) == 0
    rng = np.random.default_rng(1)
    for a, b in zip(
        rng.integers(-(10**12), 10**12, 2000).tolist(),
        rng.integers(-(10**9), 10**9, 2000).tolist(),
        strict=True,
    ):
        exact = abs(a * b) // SCALE * (1 if a * b >= 0 else -1)
        assert fix_mul(a, b) == exact
    assert relu(-5) == 0 and relu(5) == 5


def test_overflow_is_detected_never_wrapped():
    with pytest.raises(FixedPointOverflowError):
        fix_mul(INT64_MAX, 2 * SCALE)
    with pytest.raises(FixedPointOverflowError):
        fix_mul(3 * SCALE, INT64_MAX // 2)  # (a/S)*b overflows
    with pytest.raises(FixedPointOverflowError):
        to_fixed([1e12])
    with pytest.raises(FixedPointOverflowError):
        to_fixed([float("nan")])
    with pytest.raises(FixedPointOverflowError):  # a weight for which (x % S) * w could overflow
        FixedPointMLP([Layer(np.array([[MAX_ABS_WEIGHT + 1]]), np.array([0]), "identity")])
    big = 90_000_000_000  # 900.0, within the weight bound
    eng = FixedPointMLP([Layer(np.array([[big, big, big]], dtype=np.int64), np.array([0]), "identity")])
    x = np.array([[4_000_000_000_000_000] * 3], dtype=np.int64)  # 4e7 real: each product 3.6e18, sum 1.08e19
    with pytest.raises(FixedPointOverflowError, match="layer 0 unit 0"):
        eng.forward(x)
    with pytest.raises(FixedPointOverflowError):
        eng.forward_reference(x[0].tolist())


def test_checked_path_is_exact_when_only_the_cheap_bound_fails():
    big = 90_000_000_000
    eng = FixedPointMLP([Layer(np.array([[big, -big, big]], dtype=np.int64), np.array([5]), "identity")])
    x = np.array([[4_000_000_000_000_000, 4_000_000_000_000_000, 4_000_000_000_123_457]], dtype=np.int64)
    out = eng.forward(x)  # terms +-3.6e18: their bound overflows, the exact sum (3.6e18) fits
    assert out.tolist() == [eng.forward_reference(x[0].tolist())]
    assert out[0, 0] == sum(fix_mul(int(v), int(w)) for v, w in zip(x[0], (big, -big, big), strict=True)) + 5


def test_pade_tanh_error_bound_monotone_odd_and_saturating():
    xs = np.arange(-12 * SCALE, 12 * SCALE + 1, 300_017)  # ~80k points over [-12, 12]
    ys = np.array([tanh_fixed(int(v)) for v in xs])
    err = np.abs(ys / SCALE - np.tanh(xs / SCALE))
    assert err.max() <= TANH_MAX_ERROR
    assert err.max() > 1e-8  # the bound is tight-ish: the approximation is not exact
    assert np.all(np.diff(ys) >= 0)
    assert all(tanh_fixed(-int(v)) == -tanh_fixed(int(v)) for v in xs[::97])
    assert tanh_fixed(0) == 0 and tanh_fixed(9 * SCALE) == SCALE and tanh_fixed(-50 * SCALE) == -SCALE
    for centre in (0, int(8.9477 * SCALE), int(2.5 * SCALE)):  # every integer across the clamp point and 0
        block = [tanh_fixed(v) for v in range(centre - 3000, centre + 3000)]
        assert all(b >= a for a, b in zip(block, block[1:], strict=False))
    assert abs(tanh_fixed(SCALE) - round(math.tanh(1.0) * SCALE)) <= 5


def test_seed_compat_is_the_seed_formula_and_not_tanh():
    s = SCALE
    assert tanh_fixed(s, "seed_compat") == s // 2  # x(3 - x^2)/(3 + x^2) at x = 1
    assert abs(tanh_fixed(int(math.sqrt(3) * s), "seed_compat")) <= 2  # zero at sqrt(3)
    assert tanh_fixed(2 * s, "seed_compat") == go_div(fix_mul(2 * s, -s) * s, 7 * s) < 0  # negative at 2
    assert tanh_fixed(int(2.5 * s), "seed_compat") < -0.8 * s  # ... down to -0.88 ...
    assert tanh_fixed(int(2.5 * s) + 1, "seed_compat") == s  # ... then the clamp jumps to +1
    with pytest.raises(ConfigError):
        tanh_fixed(0, "fast")


def test_numpy_engine_is_bit_identical_to_the_reference():
    rng = np.random.default_rng(2)
    sizes = [7, 16, 16, 3]
    layers = [
        Layer(rng.integers(-3 * SCALE, 3 * SCALE, (o, i)), rng.integers(-SCALE, SCALE, o), "relu")
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    layers[-1].activation = "tanh"
    eng = FixedPointMLP(layers)
    x = rng.integers(-20 * SCALE, 20 * SCALE, (6, 7))
    assert eng.forward(x).tolist() == [eng.forward_reference(row) for row in x.tolist()]
    seed_eng = engine_from(seed_network(3))
    obs = to_fixed(np.random.default_rng(3).uniform(-3, 3, (2, 25)))
    assert seed_eng.forward(obs).tolist() == [seed_eng.forward_reference(row) for row in obs.tolist()]
    assert seed_eng.forward(obs[0]).tolist() == seed_eng.forward(obs)[0].tolist()  # single obs = batch row


def test_golden_outputs_are_platform_independent():
    eng = golden_net()
    x = np.array([[123456789, -987654321, 55555555, -1], [10**9, 2 * 10**9, -3 * 10**9, 7]], dtype=np.int64)
    assert eng.forward(x).tolist() == [[-10314556, -3621711, 3103781], [-7230408, -719310, 5797892]]
    assert eng.forward(x).tolist() == eng.forward(x.copy()).tolist()
    assert (
        eng.header()["checksum"] == "sha256:e32b179e63e0c6a9654e4de3cd8b2a20ce3b39f0adfbd75cbdebf5dea872837b"
    )


def test_float_and_fixed_policies_agree():
    net = seed_network(4)
    eng = engine_from(net)
    obs = np.random.default_rng(4).uniform(-5, 5, (300, 25))
    with torch.no_grad():
        ref = net(torch.as_tensor(obs, dtype=torch.float32)).double().numpy()
    assert np.abs(eng.act(obs) - ref).max() < 1e-5
    with pytest.raises(TypeError):
        eng.forward(obs)  # floats are refused: the integer path starts at to_fixed


def test_save_load_roundtrip_and_checksum(tmp_path):
    eng = engine_from(seed_network(5))
    eng.meta = {"action_low": [-1.0] * 5}
    bin_path, json_path = eng.save(tmp_path)
    assert bin_path.stat().st_size == 73_733 * 8
    loaded = FixedPointMLP.load(tmp_path)
    assert np.array_equal(loaded.flatten(), eng.flatten())
    assert loaded.activations == eng.activations and loaded.meta["action_low"] == [-1.0] * 5
    raw = bytearray(bin_path.read_bytes())
    raw[100] ^= 1
    bin_path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        FixedPointMLP.load(tmp_path)
    with pytest.raises(CheckpointError):
        FixedPointMLP.load(tmp_path / "nowhere")


def test_conversions():
    assert decimal_to_fixed("-1.234567891") == -123_456_789  # truncated toward zero, no float
    assert decimal_to_fixed("12.345000000000000000") == 1_234_500_000
    assert to_fixed([0.1, -2.5]).tolist() == [10_000_000, -250_000_000]
    assert from_fixed([SCALE // 4]).tolist() == [0.25]
    with pytest.raises(ValueError):
        decimal_to_fixed("1e5")
