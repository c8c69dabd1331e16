# Quick start: `make demo` (install + a short training run) and `make test` (install + test suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RLRUN := $(VENV)/bin/rlrun
EXTRAS ?= test

.PHONY: install demo test test-slow test-cluster bench lint tensorboard clean inverter-pipeline

install: $(VENV)/.installed-$(EXTRAS)

$(VENV)/.installed-$(EXTRAS): pyproject.toml constraints.txt setup.py rlrun/envs/chain/pow.py rlrun/envs/chain/pow.pxd
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

demo: install
	$(RLRUN) train env=blockchain agent=ddpg

test: install
	$(PY) -m pytest -q -p no:cacheprovider

test-slow: install
	$(PY) -m pytest -q -p no:cacheprovider -m slow

# Sweeps on a real one-node SLURM cluster (Debian packages, root) and a two-node Ray cluster (Ray is in the test
# extra) that the tests start on this machine and stop themselves.
test-cluster: install
	command -v slurmctld >/dev/null && command -v munged >/dev/null || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		slurmctld slurmd slurm-client munge)
	$(PY) -m pytest -q -p no:cacheprovider -m cluster -s

bench:
	$(MAKE) install EXTRAS=test,bench,sweep
	$(PY) -m bench

lint: install
	$(VENV)/bin/ruff check rlrun tests bench
	$(VENV)/bin/lint-imports --no-cache

tensorboard: install
	$(VENV)/bin/tensorboard --logdir outputs

clean:
	rm -rf $(VENV) build *.egg-info

# The inverter's offline, model-based pipeline (seed 002's next steps 1-6): ~10-15 min on one core.
D := outputs/collect/inverter-pi/dataset.npz
NETS := agent.gamma=0.9 agent.layer_norm=true agent.actor_hidden=[128,128] agent.critic_hidden=[128,128]
inverter-pipeline: install
	$(RLRUN) collect env=inverter agent=heuristic episodes=120 out=outputs/collect/inverter-pi
	$(RLRUN) train env=inverter agent=dynamics dataset=$(D) total_steps=8000 agent.policy_start=3000 eval_every=0 \
		hydra.run.dir=outputs/train/inverter-dynamics/pipeline
	$(RLRUN) dynamics-report run=outputs/train/inverter-dynamics/pipeline
	$(RLRUN) train env=inverter agent=cql dataset=$(D) total_steps=20000 agent.bc_steps=1000 $(NETS) \
		agent.batch_size=128 agent.cql_n_actions=4 eval_every=0 hydra.run.dir=outputs/train/inverter-cql/pipeline
	$(RLRUN) train env=inverter agent=cql agent.offline=false agent.cql_alpha=0 learning_starts=0 $(NETS) \
		agent.init_checkpoint=outputs/train/inverter-cql/pipeline/checkpoints/last.pt total_steps=20000 \
		eval_every=0 hydra.run.dir=outputs/train/inverter-sac-finetune/pipeline
	$(RLRUN) inverter-compare run=outputs/train/inverter-dynamics/pipeline \
		run=outputs/train/inverter-cql/pipeline run=outputs/train/inverter-sac-finetune/pipeline checkpoint=last \
		episodes=24 model=outputs/train/inverter-dynamics/pipeline
