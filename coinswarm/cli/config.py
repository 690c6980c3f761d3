"""``--config PATH.toml``: flags of the research commands from a TOML file.

Top-level keys apply to every research command that has such a flag; a ``[backtest]``,
``[sweep]``, ``[walkforward]`` or ``[evidence]`` table applies to that command only and wins
over the top level. Keys are flag names with ``_`` or ``-`` (``fee_bps``). Flags given on the
command line win over the file. Values are read exactly as the same flag's text would be, so
the file is checked by the same rules (one line, exit 2, before any data is loaded). See
``runners/research.example.toml``.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from coinswarm.errors import ConfigError

COMMANDS = ("backtest", "sweep", "walkforward", "evidence")


def load_config(path: str) -> dict:
    """The parsed TOML file at ``path``.

    Raises
    ------
    ConfigError
        No such file, or not valid TOML (the parser's line and column are kept).
    """
    target = Path(path)
    if not target.is_file():
        raise ConfigError(f"--config {path!r}: no such file")
    try:
        return tomllib.loads(target.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path!r} is not valid TOML: {exc}") from None


def config_defaults(config: dict, command: str, parser: argparse.ArgumentParser, path: str) -> dict:
    """``dest → text`` defaults for ``command``'s ``parser`` from a parsed config.

    Raises
    ------
    ConfigError
        A key no research command has, a key of a command's table that command lacks, a table
        for a command that takes no config, or a value of the wrong shape.
    """
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}
    out: dict = {}
    for key, value in config.items():
        if isinstance(value, dict) and key != "params":
            if key not in COMMANDS:
                raise ConfigError(f"--config {path!r}: table [{key}] is not one of "
                                  f"{', '.join(f'[{c}]' for c in COMMANDS)}")
            continue
        dest = key.replace("-", "_")
        if dest in actions:
            out[dest] = _as_text(value, actions[dest], key, path)
        elif not any(dest in _dests(c) for c in COMMANDS):
            raise ConfigError(f"--config {path!r}: {key!r} is no flag of {', '.join(COMMANDS)}")
    for key, value in config.get(command, {}).items():
        dest = key.replace("-", "_")
        if dest not in actions:
            valid = ", ".join(sorted(actions))
            raise ConfigError(f"--config {path!r}: [{command}] {key!r} is not a flag of {command}; valid: {valid}")
        out[dest] = _as_text(value, actions[dest], f"[{command}] {key}", path)
    return out


def _dests(command: str) -> set[str]:
    from coinswarm.cli.main import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return {a.dest for a in sub._actions if a.option_strings}


def _as_text(value, action: argparse.Action, key: str, path: str):
    """A TOML value as the text the flag would get (argparse then applies the flag's type)."""
    if action.nargs == 0:  # store_true
        if not isinstance(value, bool):
            raise ConfigError(f"--config {path!r}: {key} must be true or false, not {value!r}")
        return value
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        if isinstance(value, dict):
            items = [f"{k}={_join(v)}" for k, v in value.items()]
        return [_scalar(v, key, path) for v in items]
    if isinstance(value, dict):  # params = {fast = 20, slow = 100}
        return ",".join(f"{k}={_scalar(v, key, path)}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(_scalar(v, key, path) for v in value)
    text = _scalar(value, key, path)
    if action.type is not None and action.choices is None:
        try:
            action.type(text)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"--config {path!r}: {key}: {exc}") from None
    if action.choices is not None and text not in action.choices:
        raise ConfigError(f"--config {path!r}: {key} {text!r} is not one of {', '.join(action.choices)}")
    return text


def _join(value) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _scalar(value, key: str, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"--config {path!r}: {key} must be a string or a number, not {value!r}")
    return str(value)
