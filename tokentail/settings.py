"""Options for every command, resolved once: flag > environment > config file > default.

Each command declares its options as a list of ``Option``; ``build_parser`` turns
them into argparse arguments whose help names the environment variable, and
``resolve`` produces one frozen ``Settings`` object. Environment names follow
``TOKENTAIL_<COMMAND>_<OPTION>`` (``TOKENTAIL_PROXY_UPSTREAM``); repeatable options
take a comma-separated value there. The TOML config file (``--config``,
``TOKENTAIL_CONFIG`` or ``./tokentail.toml``) has one table per command.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

CONFIG_ENV = "TOKENTAIL_CONFIG"
DEFAULT_CONFIG_FILE = "tokentail.toml"


class SettingsError(ValueError):
    """A bad option value; the CLI prints it as one line and exits 2."""


@dataclass(frozen=True)
class Option:
    name: str  # python name, e.g. "max_body_bytes"; flag is --max-body-bytes
    help: str
    default: Any = None
    type: Callable[[str], Any] = str
    multiple: bool = False  # repeatable flag; comma-separated in the environment
    choices: tuple[Any, ...] | None = None
    secret: bool = False  # masked by `tokentail config`
    metavar: str | None = None
    # Extra env names read after the command's own (e.g. the shared TOKENTAIL_READ_TOKEN).
    env_aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_flag(self) -> bool:
        return self.type is bool or self.type is parse_bool

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def env_name(self, command: str) -> str:
        return f"TOKENTAIL_{command.upper()}_{self.name.upper()}"


def parse_bool(text: str) -> bool:
    v = text.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r} (use true/false)")


def parse_size(text: str) -> int:
    """'64MiB', '1m', '512k', '1048576' -> bytes."""
    t = text.strip().lower().replace(" ", "")
    units = {
        "kib": 1 << 10,
        "mib": 1 << 20,
        "gib": 1 << 30,
        "kb": 1000,
        "mb": 10**6,
        "gb": 10**9,
        "k": 1 << 10,
        "m": 1 << 20,
        "g": 1 << 30,
        "b": 1,
    }
    for suffix, mult in units.items():
        if t.endswith(suffix):
            return int(float(t[: -len(suffix)]) * mult)
    return int(t)


def parse_duration(text: str) -> float:
    """'5s', '250ms', '2m', '1h', '7d', '3.5' (seconds) -> seconds."""
    t = text.strip().lower()
    for suffix, mult in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)):
        if t.endswith(suffix):
            return float(t[: -len(suffix)]) * mult
    return float(t)


def port(text: str) -> int:
    p = int(text)
    if not 0 <= p <= 65535:
        raise ValueError(f"port out of range: {p}")
    return p


class Settings(Mapping[str, Any]):
    """Frozen, attribute-accessible resolved options, remembering where each came from."""

    def __init__(self, command: str, values: dict[str, Any], sources: dict[str, str], secrets: set[str]):
        object.__setattr__(self, "_command", command)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))
        object.__setattr__(self, "_sources", MappingProxyType(dict(sources)))
        object.__setattr__(self, "_secrets", frozenset(secrets))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Settings are frozen; use .replace()")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def command(self) -> str:
        return self._command

    def source(self, name: str) -> str:
        return self._sources.get(name, "default")

    def replace(self, **changes: Any) -> Settings:
        values = dict(self._values, **changes)
        sources = dict(self._sources, **dict.fromkeys(changes, "override"))
        return Settings(self._command, values, sources, set(self._secrets))

    def masked(self) -> dict[str, Any]:
        return {k: ("****" if k in self._secrets and v else v) for k, v in self._values.items()}

    def __repr__(self) -> str:
        return f"Settings({self._command}, {self.masked()!r})"


def add_options(parser: argparse.ArgumentParser, command: str, options: list[Option]) -> None:
    """Add each option as a flag whose help names its environment variable and default."""
    for opt in options:
        env = opt.env_name(command)
        default_txt = "" if opt.default in (None, [], ()) else f" (default: {opt.default})"
        help_txt = f"{opt.help}{default_txt} [env: {env}]"
        kwargs: dict[str, Any] = {"dest": opt.name, "default": None, "help": help_txt}
        if opt.is_flag:  # --x / --no-x
            parser.add_argument(opt.flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        kwargs["metavar"] = opt.metavar or opt.name.upper()
        if opt.multiple:
            kwargs["action"] = "append"
        parser.add_argument(opt.flag, **kwargs)


def load_config_file(path: str | None, env: Mapping[str, str]) -> tuple[dict[str, Any], str | None]:
    """Read the TOML config: explicit path, then $TOKENTAIL_CONFIG, then ./tokentail.toml if present."""
    explicit = path or env.get(CONFIG_ENV)
    candidate = Path(explicit) if explicit else Path(DEFAULT_CONFIG_FILE)
    if not candidate.exists():
        if explicit:
            raise SettingsError(f"config file not found: {candidate}")
        return {}, None
    try:
        with candidate.open("rb") as fh:
            return tomllib.load(fh), str(candidate)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {candidate} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"cannot read config file {candidate}: {exc.strerror}") from None


def _convert(opt: Option, raw: Any, origin: str) -> Any:
    try:
        if opt.multiple:
            items = raw if isinstance(raw, list) else [raw]
            out: list[Any] = []
            for item in items:
                if isinstance(item, str) and origin == "environment":
                    out.extend(p.strip() for p in item.split(",") if p.strip())
                else:
                    out.append(item)
            return [opt.type(x) if isinstance(x, str) else x for x in out]
        if opt.is_flag:
            if isinstance(raw, str):
                value = parse_bool(raw)
            elif isinstance(raw, bool):
                value = raw
            else:
                raise ValueError(f"not a boolean: {raw!r}")
        elif isinstance(raw, str) and opt.type is not str:
            value = opt.type(raw)
        else:
            value = raw
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"{opt.flag} ({origin}): {exc}") from None
    if opt.choices is not None and value not in opt.choices:
        allowed = ", ".join(map(str, opt.choices))
        raise SettingsError(f"{opt.flag} ({origin}): {value!r} is not one of {allowed}")
    return value


def resolve(
    command: str,
    options: list[Option],
    args: argparse.Namespace | dict[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    file_config: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve every option: flag > environment > config file table > default."""
    env = os.environ if env is None else env
    flags = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    table = dict((file_config or {}).get(command, {}))
    known = {o.name for o in options}
    unknown = sorted(k.replace("-", "_") for k in table if k.replace("-", "_") not in known)
    if unknown:
        raise SettingsError(f"config file [{command}]: unknown option(s): {', '.join(unknown)}")
    table = {k.replace("-", "_"): v for k, v in table.items()}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in options:
        env_names = (opt.env_name(command), *opt.env_aliases)
        env_hit = next((n for n in env_names if env.get(n) not in (None, "")), None)
        if flags.get(opt.name) is not None:
            values[opt.name] = _convert(opt, flags[opt.name], "flag")
            sources[opt.name] = "flag"
        elif env_hit:
            values[opt.name] = _convert(opt, env[env_hit], "environment")
            sources[opt.name] = f"env {env_hit}"
        elif opt.name in table:
            values[opt.name] = _convert(opt, table[opt.name], "config file")
            sources[opt.name] = "config file"
        else:
            default = opt.default
            values[opt.name] = list(default) if isinstance(default, (list, tuple)) else default
            sources[opt.name] = "default"
    return Settings(command, values, sources, {o.name for o in options if o.secret})
