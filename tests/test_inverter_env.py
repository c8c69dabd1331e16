"""env=inverter: Gymnasium contract, the physics of delay / ramp / metering, accounting, compliance counters,
data sources (pvlib PV, demandlib load) and exact resume."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rlrun.envs.inverter import InverterEnv, obs_dim, pending_slice
from rlrun.envs.inverter.env import is_test_day
from rlrun.envs.inverter.household import h25_watts_per_kwh_year, load_trace
from rlrun.envs.inverter.solar import clear_sky_day, cloud_clearness, pv_trace
from rlrun.errors import ConfigError

FULL = np.ones(3, dtype=np.float32)
OFF = -np.ones(3, dtype=np.float32)


def rollout(env: InverterEnv, actions, seed: int = 3):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    infos, rewards = [], []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append(obs)
        infos.append(info)
        rewards.append(r)
        if term or trunc:
            break
    return np.array(out), infos, np.array(rewards)


def test_check_env_and_documented_observation_size():
    env = InverterEnv(episode_s=120)
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (30,) and env.action_space.shape == (3,)
    assert obs_dim(5) == 30 and obs_dim(2) == 21
    assert InverterEnv(delay_s=2, episode_s=60).observation_space.shape == (21,)


def test_same_seed_same_trajectory_and_different_seed_differs():
    acts = [np.full(3, 0.1 * np.sin(i), dtype=np.float32) for i in range(40)]
    a, _, ra = rollout(InverterEnv(episode_s=300), acts, seed=11)
    b, _, rb = rollout(InverterEnv(episode_s=300), acts, seed=11)
    c, _, _ = rollout(InverterEnv(episode_s=300), acts, seed=12)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ra, rb)
    assert not np.allclose(a, c)


def test_actuation_delay_ramp_and_capacity():
    env = InverterEnv(episode_s=60, noise_w=0.0, delay_s=5, ramp_w_per_s=1000.0, slaves_per_phase=[2, 1, 0],
                      slave_max_w=2500.0, warm_start=False)
    obs, infos, _ = rollout(env, [FULL] * 10)
    slave = obs[1:, 8:11] * env.obs_scale  # slave consumption after each step
    np.testing.assert_allclose(slave[:5], 0.0, atol=1e-6)  # the command is not in effect for 5 steps
    np.testing.assert_allclose(slave[5:9, 0], [1000, 2000, 3000, 4000], atol=1e-3)  # ramp 1000 W/s
    np.testing.assert_allclose(slave[5:9, 1], [1000, 2000, 2500, 2500], atol=1e-3)  # capacity 1 x 2500 W
    np.testing.assert_allclose(slave[:, 2], 0.0, atol=1e-6)  # no slave on phase c
    # the pending block holds the 5 commands not yet in effect, as fractions of max_power
    np.testing.assert_allclose(obs[3, pending_slice(5)].reshape(5, 3)[-3:], 1.0)
    np.testing.assert_allclose(obs[3, pending_slice(5)].reshape(5, 3)[:2], 0.0)
    assert infos[8]["diverted_w"] == pytest.approx(4000 + 2500)


def test_zero_delay_acts_immediately():
    env = InverterEnv(episode_s=30, noise_w=0.0, delay_s=0, ramp_w_per_s=10_000.0, warm_start=False)
    obs, _, _ = rollout(env, [FULL])
    np.testing.assert_allclose(obs[1, 8:11] * env.obs_scale, [5000, 2500, 2500], atol=1e-3)


def test_energy_accounting_reward_and_compliance_counters():
    weights = {"export_weight": 2.0, "import_weight": 0.5, "churn_weight": 0.1, "over_limit_weight": 0.3}
    env = InverterEnv(episode_s=90, day=172, window_start_h=11, window_end_h=13, reward=weights, warm_start=False)
    acts = [OFF] * 60 + [FULL] * 30
    _, infos, rewards = rollout(env, acts)
    last = infos[-1]
    assert last["export_kwh"] == pytest.approx(sum(i["export_w"] for i in infos) / 3.6e6, rel=1e-9)
    assert last["over_diversion_kwh"] == pytest.approx(sum(i["over_diversion_w"] for i in infos) / 3.6e6)
    for k, (info, r) in enumerate(zip(infos, rewards, strict=True)):
        churn_kw = 15.0 if k == 60 else 0.0  # -1 -> +1 on 3 phases = 3 x 5 kW
        expected = -(2.0 * info["export_w"] + 0.5 * info["over_diversion_w"]) / 1000 - 0.1 * churn_kw \
            - 0.3 * (info["export_w"] > 50.0)
        assert r == pytest.approx(expected, abs=1e-9)
    # midsummer noon with slaves off: exporting every second until full diversion lands at second 66
    over = [i["export_w"] > 50.0 for i in infos]
    assert all(over[:60])
    first_ok = over.index(False)
    assert 60 < first_ok <= 70
    assert last["seconds_over_limit"] == sum(over)
    assert last["longest_excursion_s"] >= first_ok
    assert last["g100_violations"] >= 1
    assert set(env.tensorboard_layout) == {"inverter"}


def test_warm_start_begins_with_the_surplus_diverted():
    env = InverterEnv(episode_s=60, day=172, noise_w=0.0)
    obs, _ = env.reset(seed=4)
    surplus = env._trace["pv"][0] / 3 - env._trace["load"][0]
    np.testing.assert_allclose(obs[8:11] * env.obs_scale, np.clip(surplus, 0, [5000, 2500, 2500]), atol=1e-3)
    np.testing.assert_allclose(obs[pending_slice(5)].reshape(5, 3) * env.max_power,
                               np.tile(obs[8:11] * env.obs_scale, (5, 1)), atol=1e-3)
    assert obs[0] * env.obs_scale < 300  # no start-up export burst
    cold, _ = InverterEnv(episode_s=60, day=172, noise_w=0.0, warm_start=False).reset(seed=4)
    assert cold[0] * env.obs_scale > 3000


def test_per_phase_metering_exports_at_least_net_metering():
    kw = dict(episode_s=200, day=100, noise_w=0.0)
    acts = [np.array([0.3, -1.0, -0.5], dtype=np.float32)] * 200
    _, per_phase, _ = rollout(InverterEnv(metering="per_phase", **kw), acts)
    _, net, _ = rollout(InverterEnv(metering="net", **kw), acts)
    assert per_phase[-1]["export_kwh"] >= net[-1]["export_kwh"] - 1e-12
    assert per_phase[-1]["import_kwh"] >= net[-1]["import_kwh"] - 1e-12
    assert per_phase[-1]["export_kwh"] > net[-1]["export_kwh"]  # phase a over-diverts, b/c export


def test_train_and_test_days_are_disjoint():
    train, test = InverterEnv(split="train"), InverterEnv(split="test")
    assert len(test.days) == 49 and len(train.days) == 274
    assert not set(train.days) & set(test.days)
    for seed in range(5):
        _, info = test.reset(seed=seed)
        assert is_test_day(info["day"])
        _, info = train.reset(seed=seed)
        assert not is_test_day(info["day"])


def test_bad_config_is_rejected_with_the_key():
    with pytest.raises(ConfigError, match="reward.export_wieght is not a weight"):
        InverterEnv(reward={"export_wieght": 1.0})
    with pytest.raises(ConfigError, match="reward.import_weight"):
        InverterEnv(reward={"import_weight": -1.0})
    with pytest.raises(ConfigError, match="env.metering"):
        InverterEnv(metering="gross")
    with pytest.raises(ConfigError, match="env.site"):
        InverterEnv(site="nowhere.csv")
    with pytest.raises(ConfigError, match="env.episode_s"):
        InverterEnv(episode_s=10 * 3600, window_start_h=9, window_end_h=16)


def test_pv_from_pvlib_is_physical():
    rng = np.random.default_rng(0)
    kw = dict(pv_kwp=8.0, inverter_kw=8.0, tilt=30.0, azimuth=180.0, shade_s=60.0, edge_s=4.0)
    _, clear_noon = pv_trace(rng, "723170TYA.CSV", 172, 12 * 3600, 60, **kw)
    _, clear_night = pv_trace(rng, "723170TYA.CSV", 172, 0, 60, **kw)
    _, clear_winter = pv_trace(rng, "723170TYA.CSV", 355, 12 * 3600, 60, **kw)
    assert 5000 < clear_noon.mean() < 7700  # 8 kWp, clear sky, June noon at 36 N
    assert clear_night.max() == 0.0
    assert clear_winter.mean() < clear_noon.mean()
    day = clear_sky_day("723170TYA.CSV", 172)
    assert day.ghi.max() > 900 and day.ghi[:180].max() == 0.0  # ~1000 W/m2 at noon, dark before 3 am


def test_cloud_process_matches_the_tmy_clearness_on_average():
    rng = np.random.default_rng(1)
    for kt in (0.45, 0.7):
        x = cloud_clearness(rng, np.full(40_000, kt), shade_s=60.0, edge_s=4.0)
        assert x.mean() == pytest.approx(kt, abs=0.04)
        assert x.std() > 0.15  # broken clouds: second-scale variability
    overcast = cloud_clearness(rng, np.full(2000, 0.2), 60.0, 4.0)
    assert overcast.mean() == pytest.approx(0.2, abs=0.01)


def test_household_load_reproduces_bdew_h25_energy():
    doy, annual = 40, 4500.0
    h25_day_wh = h25_watts_per_kwh_year()[doy].sum() * annual / 4  # W over 15-min steps -> Wh
    days = [load_trace(np.random.default_rng(s), doy, 0, 86400, annual_kwh=annual,
                       phase_shares=np.array([0.4, 0.35, 0.25]), appliance_share=0.3, mean_temp_c=3.0,
                       day_clearness=0.4).sum() / 3600 for s in range(8)]
    assert np.mean(days) == pytest.approx(h25_day_wh, rel=0.15)
    assert 4500 / 365 * 1000 * 0.6 < h25_day_wh < 4500 / 365 * 1000 * 1.6


def test_get_state_set_state_resumes_exactly():
    env = InverterEnv(episode_s=200)
    rollout(env, [FULL * 0.2] * 50, seed=5)
    snap = env.get_state()
    tail = [np.full(3, 0.01 * i, dtype=np.float32) for i in range(60)]
    a = [env.step(x) for x in tail]
    other = InverterEnv(episode_s=200)
    other.reset(seed=99)
    other.set_state(snap)
    b = [other.step(x) for x in tail]
    for (oa, ra, *_), (ob, rb, *_) in zip(a, b, strict=True):
        np.testing.assert_array_equal(oa, ob)
        assert ra == rb


def test_held_out_splits_cover_every_weekday_and_month_of_the_year():
    """Whole held-out weeks: the test and validation splits each contain all 7 weekdays (2023-01-01 is a
    Sunday), test weeks fall in 7 different months spread over all four seasons, and train, val and test
    are disjoint and cover the year."""
    from rlrun.envs.inverter.split import days_of

    train, val, test = (days_of(s, 8) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (274, 42, 49)
    assert len(set(train) | set(val) | set(test)) == 365 and not set(val) & set(test)
    for days in (val, test):
        assert sorted({int(d) % 7 for d in days}) == list(range(7))
    month_of = [(np.datetime64("2023-01-01") + np.timedelta64(int(d), "D")).astype("datetime64[M]") for d in test]
    months = {int(str(m)[5:7]) for m in month_of}
    assert len(months) >= 7 and {1, 3, 5, 6, 8, 10, 12} <= months  # a week may straddle two months
    seasons = {(m % 12) // 3 for m in months}
    assert seasons == {0, 1, 2, 3}


def test_a_split_without_training_days_is_a_one_line_error():
    with pytest.raises(ConfigError, match="no training days"):
        InverterEnv(holdout_every_weeks=2)
    with pytest.raises(ConfigError, match="env.split"):
        InverterEnv(split="holdout")


def test_evaluation_envs_use_the_validation_and_test_weeks():
    """In-training evaluation (and best.pt) runs on split=val, the final report and `rlrun eval` on split=test:
    the env declares both in its `eval_kwargs` hook; a training env keeps the config's split."""
    from omegaconf import OmegaConf

    from rlrun.collect import make_env

    cfg = OmegaConf.create({"_target_": "rlrun.envs.inverter.InverterEnv", "episode_s": 60})
    assert make_env(cfg).split == "train"
    assert make_env(cfg, evaluation="val").split == "val"
    assert make_env(cfg, evaluation="test").split == "test"
    assert make_env(cfg, evaluation=True).split == "test"  # what callers that do not choose mean
    with pytest.raises(ValueError, match="evaluation"):
        make_env(cfg, evaluation="holdout")


def test_training_selects_on_validation_and_reports_the_test_split(tmp_path):
    """A tiny run: eval.json says which split each figure comes from; the validation and test episodes are
    drawn from the val and test weeks, with seeds that differ (val_seed vs eval_seed, which may not overlap)."""
    import json

    from conftest import compose
    from rlrun.trainer import Trainer

    cfg = compose(["env=inverter", "agent=heuristic", "env.episode_s=20", "total_steps=40", "eval_every=20",
                   "eval_episodes=2", "progress=false", "plots=false"])
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.val_envs.attr("split") == "val" and trainer.eval_envs.attr("split") == "test"
    summary = trainer.run()
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert saved["final"]["split"] == "test" and saved["final"]["baseline"]["split"] == "test"
    assert saved["validation"]["split"] == "val" and saved["best"]["split"] == "val"
    assert summary["best"]["return_mean"] >= saved["validation"]["return_mean"]
    assert saved["validation"]["returns"] != saved["final"]["returns"]
    with pytest.raises(ConfigError, match="val_seed"):
        Trainer(compose(["env=inverter", "agent=heuristic", "val_seed=1000001", "progress=false"]),
                tmp_path / "bad")


CURTAIL = {"export_weight": 1.25, "import_weight": 1.0, "churn_weight": 0.01, "curtailment_weight": 1.0}


def test_curtailment_energy_balance_to_the_watt_second():
    """PV + import = load + export + curtailed + diverted, every second and over the episode, under random
    slave and curtailment commands (per-phase and net metering)."""
    for metering in ("per_phase", "net"):
        env = InverterEnv(episode_s=600, day=172, curtailment=True, reward=CURTAIL, metering=metering)
        rng = np.random.default_rng(0)
        _, infos, rewards = rollout(env, rng.uniform(-1, 1, size=(600, 4)).astype(np.float32), seed=5)
        assert len(infos) == 600
        for i in infos:
            assert i["pv_w"] + i["import_w"] == pytest.approx(
                i["load_w"] + i["export_w"] + i["curtailed_w"] + i["diverted_w"], abs=1e-6)
            assert i["r_curtailment"] == pytest.approx(-1.0 * i["curtailed_w"] / 1000.0)
        last = infos[-1]
        ws = {k: last[f"{k}_kwh"] * 3.6e6 for k in ("pv", "import", "load", "export", "curtailed", "diverted")}
        assert ws["pv"] + ws["import"] == pytest.approx(
            ws["load"] + ws["export"] + ws["curtailed"] + ws["diverted"], abs=1.0)  # 1 W*s
        assert ws["curtailed"] > 1e5  # the random limits did curtail


def test_curtailment_acts_within_a_second_and_compliance_is_reported_with_and_without_it():
    """Midsummer noon, slaves off: without curtailment every second exports; full curtailment from the first
    step brings export to zero the next second (no slave delay or ramp), and the counters the site would
    have had without it still show the excursion."""
    env = InverterEnv(episode_s=60, day=172, window_start_h=11, window_end_h=13, warm_start=False,
                      curtailment=True, reward=CURTAIL)
    assert env.observation_space.shape == (31,) and env.action_space.shape == (4,)
    np.testing.assert_array_equal(env.noop_action, -np.ones(4))
    obs, infos, _ = rollout(env, [np.array([-1, -1, -1, 1], dtype=np.float32)] * 60)
    assert all(i["export_w"] == 0.0 for i in infos)
    assert obs[1, -1] == 0.0 and obs[0, -1] == 1.0  # the limit in force, as a fraction of the rating
    last = infos[-1]
    assert last["seconds_over_limit"] == 0 and last["g100_violations"] == 0
    assert last["seconds_over_limit_without_curtailment"] == 60
    assert last["longest_excursion_s_without_curtailment"] == 60
    assert last["g100_violations_without_curtailment"] == 1
    assert last["curtailed_kwh"] == pytest.approx(last["pv_kwh"])
    # half the rating: output is min(pv, 4 kW)
    _, infos, _ = rollout(env, [np.array([-1, -1, -1, 0.0], dtype=np.float32)] * 5)
    assert all(i["pv_w"] - i["curtailed_w"] == pytest.approx(min(i["pv_w"], 4000.0)) for i in infos)


def test_curtailment_off_is_the_three_action_env_and_needs_a_price_when_on():
    a, _, ra = rollout(InverterEnv(episode_s=120), [np.zeros(3, dtype=np.float32)] * 120, seed=2)
    b, _, rb = rollout(InverterEnv(episode_s=120, reward=CURTAIL), [np.zeros(3, dtype=np.float32)] * 120, seed=2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ra, rb)
    with pytest.raises(ConfigError, match="reward.curtailment_weight"):
        InverterEnv(curtailment=True)
    with pytest.raises(ConfigError, match="reward.curtailment_weight"):
        InverterEnv(curtailment=True, reward={**CURTAIL, "curtailment_weight": 0.0})
    check_env(InverterEnv(episode_s=60, curtailment=True, reward=CURTAIL), skip_render_check=True)


def test_curtailment_without_a_price_is_one_line_exit_2(tmp_path):
    from conftest import run_cli

    proc = run_cli(["train", "env=inverter", "agent=sac", "env.curtailment=true", "total_steps=10"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "reward.curtailment_weight" in lines[0]


def test_get_state_set_state_resumes_exactly_with_curtailment():
    kw = dict(episode_s=200, day=172, curtailment=True, reward=CURTAIL)
    env = InverterEnv(**kw)
    rng = np.random.default_rng(1)
    rollout(env, rng.uniform(-1, 1, size=(50, 4)).astype(np.float32), seed=5)
    snap = env.get_state()
    tail = rng.uniform(-1, 1, size=(150, 4)).astype(np.float32)
    a = [env.step(x) for x in tail]
    other = InverterEnv(**kw)
    other.reset(seed=99)
    other.set_state(snap)
    b = [other.step(x) for x in tail]
    for (oa, ra, _, _, ia), (ob, rb, _, _, ib) in zip(a, b, strict=True):
        np.testing.assert_array_equal(oa, ob)
        assert ra == rb and ia == ib
    assert "g100_violations_without_curtailment" in b[-1][4]
