"""The one key=value argument parser of rlrun's subcommands (everything but train and sweep, which Hydra parses).

    args = parse_args("eval", argv, {"run": "run directory", "episodes": "N"}, overrides="env")
    episodes = args.integer("episodes", 10, minimum=1)

Every mistake is a ConfigError line that names the command, the key and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rlrun.errors import ConfigError

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass
class Args:
    command: str
    values: dict[str, str] = field(default_factory=dict)
    repeated: dict[str, list[str]] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def require(self, key: str, what: str) -> str:
        if not self.values.get(key):
            raise ConfigError(f"rlrun {self.command} needs {key}=<{what}>")
        return self.values[key]

    def path(self, key: str, what: str) -> Path:
        return Path(self.require(key, what))

    def integer(self, key: str, default: int, minimum: int | None = None) -> int:
        raw = self.values.get(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"rlrun {self.command}: {key} must be an integer, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"rlrun {self.command}: {key} must be >= {minimum}, got {value}")
        return value

    def number(self, key: str, default: float) -> float:
        raw = self.values.get(key)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"rlrun {self.command}: {key} must be a number, got {raw!r}") from None

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.values.get(key)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigError(f"rlrun {self.command}: {key} must be true or false, got {raw!r}")

    def choice(self, key: str, default: str, allowed: Iterable[str]) -> str:
        value = self.values.get(key, default)
        allowed = list(allowed)
        if value not in allowed:
            raise ConfigError(f"rlrun {self.command}: {key}={value!r} is not supported; allowed: "
                              f"{', '.join(allowed)}")
        return value


def parse_args(command: str, argv: list[str], keys: dict[str, str], overrides: str | None = None,
               flags: Iterable[str] = (), repeatable: Iterable[str] = ()) -> Args:
    """`keys`: the command's own settings (name -> what it takes, shown in errors). `overrides`: None (no
    config overrides), "env" (`env.<key>=...` passes through) or "config" (any other key=value is a Hydra
    override of the composed config). `flags`: bare `--name` arguments. `repeatable`: keys given more than
    once, collected in order."""
    flags, repeatable = set(flags), set(repeatable)
    out = Args(command)
    for arg in argv:
        if arg in flags:
            out.flags.add(arg)
            continue
        key, sep, value = arg.partition("=")
        if sep and key in keys:
            if key in repeatable:
                out.repeated.setdefault(key, []).append(value)
            out.values[key] = value
        elif sep and (overrides == "config" or (overrides == "env" and key.startswith("env."))):
            out.overrides.append(arg)
        else:
            allowed = [*keys, *sorted(flags)]
            if overrides == "env":
                allowed.append("env.<key>")
            elif overrides == "config":
                allowed.append("config overrides (env=..., agent.<key>=...)")
            what = f"{key} is not a {command} setting" if sep else f"unexpected argument {arg!r}"
            raise ConfigError(f"rlrun {command}: {what}; allowed: {', '.join(allowed)}")
    return out


def usage_from_doc(doc: str | None) -> str:
    """`rlrun <command> --help` from the command module's docstring, which opens with "`usage`: what it does"."""
    text = (doc or "").strip()
    synopsis, _, rest = text.partition("`:")
    synopsis = " ".join(synopsis.strip("`").split())
    return f"usage: {synopsis}  [trust_config=true]\n\n{rest.strip()}"
