"""One module per `rlrun` subcommand that is not a Hydra run (train and sweep go through rlrun.cli)."""
