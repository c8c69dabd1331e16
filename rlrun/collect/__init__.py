"""Vectorised experience collection: N copies of one env stepped together (sync, worker processes, Ray actors).

The pools never autoreset: the caller resets each copy whose episode ended, so no stored transition can link
the last state of one episode to the first state of the next.
"""

from rlrun.collect.factory import EnvFactory, make_env
from rlrun.collect.pool import VECTOR_MODES, EnvPool, StepResult, make_pool

__all__ = ["VECTOR_MODES", "EnvFactory", "EnvPool", "StepResult", "make_env", "make_pool"]
