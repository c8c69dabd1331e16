"""Learning quality on Pendulum-v1 with rl-zoo3's hyperparameters (make test-slow; a few minutes each)."""

import pytest

from conftest import compose
from rlrun.trainer import Trainer


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["ddpg", "td3"])
def test_reaches_minus_200_within_20k_steps(tmp_path, agent):
    cfg = compose([f"+experiment=pendulum_{agent}", "progress=false", "plots=false", "eval_every=0"])
    assert cfg.total_steps == 20_000
    summary = Trainer(cfg, tmp_path).run()
    assert summary["final"]["return_mean"] >= -200, summary["final"]
