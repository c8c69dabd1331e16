"""The event core's two builds (rlrun/envs/chain/core.py): the compiled one is built where a C compiler is, runs
only while it matches pow.py, and gives the same results as pow.py run as Python, bit for bit."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from rlrun.envs.chain import Network, NetworkSpec, TxWorkload, TxWorkloadSpec, core, make_hashpower, strategy_plan
from rlrun.envs.chain.metrics import chain_summary
from rlrun.envs.chain.protocol import ProtocolSpec
from rlrun.envs.chain.tables import POOL_HASHPOWER

ROOT = Path(__file__).resolve().parents[1]
FORCED_PYTHON = os.environ.get("RLRUN_CHAIN_CORE") == "python"
needs_compiled = pytest.mark.skipif(core.core_kind() != "compiled", reason="the core is not compiled here")


@pytest.mark.skipif(FORCED_PYTHON or shutil.which("cc") is None, reason="no C compiler, or Python forced")
def test_the_build_compiles_the_core_and_it_runs():
    """Where a C compiler is, the install compiles pow.py and this process runs that build (a failed compile
    would otherwise leave everything quietly 1.3-1.5x slower)."""
    assert core.core_kind() == "compiled"
    assert core.built_from_source(core.compiled_file())


def _run(pow_module, case: str):
    rng = np.random.default_rng(5)
    protocol = None
    if case == "compact+push+miners' network+uncles":
        protocol = ProtocolSpec.from_config({"block_relay": "compact", "push_peers": 3, "miners_network": True,
                                             "max_uncles": 2, "uncle_depth": 6, "relay_side_blocks": True,
                                             "pool_switch_s": 0.3, "request_delay_s": 0.2})
    spec = NetworkSpec.from_config({"nodes": 60, "fixed_delay_s": 1.5 if case == "fixed delay" else None})
    net = Network(spec, rng)
    workload = TxWorkload(TxWorkloadSpec(rate_tps=150.0, mempool_max_mb=0.4), 60, rng.spawn(1)[0])
    sim = pow_module.PowChain(net, workload, make_hashpower(60, POOL_HASHPOWER, rng), rng,
                              mempool_max_bytes=0.4e6, protocol=protocol)
    sim.configure(0.3e6, 6.0, strategy_plan(net, "random") if case == "random" else None)
    sim.advance(150 * 6.0, 30.0)
    return sim


@needs_compiled
@pytest.mark.parametrize("case", ["flood", "random", "fixed delay", "compact+push+miners' network+uncles"])
def test_compiled_and_python_builds_give_the_same_run(case):
    python_pow = core.load_python("rlrun_chain_pow_as_python")
    compiled_pow = sys.modules[core.MODULE]
    assert python_pow.PowChain is not compiled_pow.PowChain
    fast, ref = _run(compiled_pow, case), _run(python_pow, case)
    assert fast.n_blocks > 100 and chain_summary(fast)["stale"] > 2 and fast.reorgs > 0
    assert fast.mempool.counts(fast.now)["evicted"] > 0
    for name in ("parent", "t_found", "canon", "size", "miner", "n_have", "t50", "t90", "gas", "limit"):
        assert repr(getattr(fast, name)) == repr(getattr(ref, name)), name
    assert repr(fast.uncles) == repr(ref.uncles) and repr(fast.t_miner) == repr(ref.t_miner)
    assert all(np.array_equal(a, b) for a, b in zip(fast.txs, ref.txs, strict=True))
    assert fast.mempool.counts(fast.now) == ref.mempool.counts(ref.now)
    assert (fast.events, fast.invs_suppressed, fast.transport.bytes_up) == \
           (ref.events, ref.invs_suppressed, ref.transport.bytes_up)


@needs_compiled
def test_the_compiled_message_heap_hands_out_messages_in_heapq_order():
    """The compiled build's own heap (pow._push_msg, _pop_msg) against heapq on the same pushes and pops, with
    many messages due at the same time (links of equal latency), so that seq decides."""
    import heapq
    import random

    compiled_pow = sys.modules[core.MODULE]
    assert compiled_pow._push_msg is not heapq.heappush
    rng = random.Random(3)
    ours: list[tuple] = []
    ref: list[tuple] = []
    popped = []
    for seq in range(20_000):
        item = (rng.choice((0.5, 1.0, 1.25, rng.uniform(0.0, 2.0))) + seq // 500, seq, "payload", seq % 7, 0, 0, 0.1)
        compiled_pow._push_msg(ours, item)
        heapq.heappush(ref, item)
        while ref and rng.random() < 0.45:
            popped.append((compiled_pow._pop_msg(ours), heapq.heappop(ref)))
    while ref:
        popped.append((compiled_pow._pop_msg(ours), heapq.heappop(ref)))
    assert not ours and len(popped) == 20_000
    assert all(a is b for a, b in popped)


def test_a_compiled_core_is_run_only_with_the_record_of_its_source(tmp_path):
    source = tmp_path / "pow.py"
    source.write_text("X = 1\n")
    assert core.compiled_file(tmp_path) is None
    compiled = tmp_path / f"pow{core.importlib.machinery.EXTENSION_SUFFIXES[0]}"
    compiled.write_bytes(b"")
    assert core.compiled_file(tmp_path) == compiled
    assert not core.built_from_source(compiled, source)  # no record
    (tmp_path / core.RECORD).write_text(hashlib.sha256(source.read_bytes()).hexdigest() + "\n")
    assert core.built_from_source(compiled, source)
    source.write_text("X = 2\n")  # edited (or checked out) after the build
    assert not core.built_from_source(compiled, source)


def _select_with(monkeypatch, tmp_path: Path, record: str | None, forced: bool = False) -> str:
    """Which build `select_core` picks for a package folder holding a pow.py, a compiled module and `record`
    (a stand-in folder: the selection reads files; importing the compiled module is the interpreter's part,
    and test_the_build_compiles_the_core_and_it_runs checks it in this process)."""
    source = tmp_path / "pow.py"
    source.write_text("BUILD = 'python'\n")
    (tmp_path / f"pow{core.importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    if record is not None:
        (tmp_path / core.RECORD).write_text(record)
    monkeypatch.setattr(core, "SOURCE", source)
    monkeypatch.delitem(sys.modules, core.MODULE, raising=False)  # restored (the build this process runs) afterwards
    monkeypatch.setenv("RLRUN_CHAIN_CORE", "python" if forced else "")
    core.select_core()
    module = sys.modules.get(core.MODULE)
    return "compiled: left to the import" if module is None else module.BUILD


def test_a_compiled_core_is_not_run_unless_built_from_the_source_beside_it(monkeypatch, tmp_path):
    current = hashlib.sha256(b"BUILD = 'python'\n").hexdigest() + "\n"
    assert _select_with(monkeypatch, _mk(tmp_path, "current"), current) == "compiled: left to the import"
    for name, record in (("stale", "0" * 64), ("unrecorded", None)):
        with pytest.warns(UserWarning, match="was not built from the pow.py beside it"):
            assert _select_with(monkeypatch, _mk(tmp_path, name), record) == "python"
    assert _select_with(monkeypatch, _mk(tmp_path, "forced"), current, forced=True) == "python"


def _mk(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder
