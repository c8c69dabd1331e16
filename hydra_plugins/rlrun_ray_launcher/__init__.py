"""rlrun's Hydra launcher for Ray clusters (`rlrun sweep hydra/launcher=ray`); the work is in rlrun.sweep_ray."""
