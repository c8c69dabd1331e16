"""The Ray side of `vector=ray`: one actor per env copy. Imported only when Ray is asked for."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from rlrun.collect.factory import EnvFactory
from rlrun.errors import ConfigError


def ray_module() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("vector=ray needs Ray, which is not installed: pip install 'rlrun[ray]'") from None
    return ray


def check_ray_address(address: str | None, key: str) -> None:
    """Fail with one line, before anything is submitted or written, when no Ray cluster answers at `address`
    (None/"null": a local Ray will be started, nothing to check; "auto": the cluster this machine joined)."""
    if address in (None, "", "null", "None", "local"):
        return
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or ""
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if not address and current.is_file():
            address = current.read_text().strip()
        if not address:
            raise ConfigError(f"{key}=auto, but no Ray cluster runs on this machine: start one with "
                              f"`ray start --head`, or set {key}=<head>:6379 (null: start a local Ray)")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3.0):
            pass
    except (OSError, ValueError):
        raise ConfigError(f"{key}={address}: no Ray cluster answers there (is `ray start --head` running, "
                          f"and is the port its --port?)") from None


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


class EnvActor:
    """Holds one env copy; every method answers ("ok", value) or ("error", "Type: message") so an env's own
    exception reaches the trainer as one line that names its copy."""

    def __init__(self, factory: EnvFactory, index: int) -> None:
        self.env, self.error = None, None
        try:
            self.env = factory(index)
        except Exception as e:
            self.error = _describe(e)

    def _run(self, fn: Any, *args: Any) -> tuple[str, Any]:
        if self.error is not None:
            return "error", self.error
        try:
            return "ok", fn(*args)
        except Exception as e:
            return "error", _describe(e)

    def spaces(self) -> tuple[str, Any]:
        return self._run(lambda: (self.env.observation_space, self.env.action_space))

    def reset(self, seed: int | None) -> tuple[str, Any]:
        return self._run(lambda: self.env.reset(seed=seed))

    def step(self, action: Any) -> tuple[str, Any]:
        return self._run(self.env.step, action)

    def call(self, name: str, args: tuple) -> tuple[str, Any]:
        return self._run(lambda: getattr(self.env.unwrapped, name)(*args))

    def node(self) -> tuple[str, Any]:
        import ray

        return "ok", ray.get_runtime_context().get_node_id()

    def attr(self, name: str, default: Any) -> tuple[str, Any]:
        def get() -> Any:
            if name.startswith("__has__"):
                return callable(getattr(self.env.unwrapped, name[len("__has__"):], None))
            return getattr(self.env.unwrapped, name, default)

        return self._run(get)


def start_actors(factory: EnvFactory, num_envs: int, address: str | None, cpus: float = 1.0) -> list[Any]:
    """Connect to the cluster at `address` (or start a local Ray sized so every copy gets a CPU slot) and place
    one actor per copy, each reserving `cpus` (evaluation copies reserve none: they idle while the training
    copies run); Ray spreads them over the cluster's nodes."""
    ray = ray_module()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = max(os.cpu_count() or 1, num_envs)
        try:
            ray.init(**kwargs)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
            where = f"ray.address={address}" if address else "a local Ray"
            raise ConfigError(f"cannot start or reach {where}: {_describe(e)}") from None
    actor = ray.remote(num_cpus=cpus)(EnvActor)
    return [actor.remote(factory, i) for i in range(num_envs)]
