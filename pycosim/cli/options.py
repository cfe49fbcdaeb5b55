"""Command-line options generated from dataclass fields: one `--field-name` per spec, stimulus
and nonideality field, with its unit, default and allowed range in `--help`.

Options left out are absent from the namespace (`argparse.SUPPRESS`), so the class's own
defaults apply. Values come back per namespace prefix: `values(args, SPEC)`.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from typing import Any

from .fields import FieldInfo

SPEC, STIMULUS, NONIDEAL = "spec:", "stimulus:", "nonideal:"  # dest prefixes, one per dataclass


def flag(name: str) -> str:
    """`opamp.gbw_hz` → `--opamp-gbw-hz`."""
    return "--" + name.replace(".", "-").replace("_", "-")


def literal(text: str) -> Any:
    """A value written as a TOML literal (`1e-9`, `true`, `"relu"`, `[1, 2]`); bare text stays text."""
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def _number(text: str) -> str:
    return f"{text:g}" if isinstance(text, float) else str(text)


def describe_help(info: FieldInfo, default: str | None = None) -> str:
    """`[unit] description; default X; range [lo, hi]` ('%' escaped for argparse)."""
    text = f"[{info.unit}] " if info.unit else ""
    if default is None:
        default = "none (required)" if info.default is dataclasses.MISSING else repr(info.default)
    text += f"{info.doc}; default {default}" if info.doc else f"default {default}"
    if info.range is not None:
        text += f"; range [{_number(info.range[0])}, {_number(info.range[1])}]"
    return text.replace("%", "%%")



def _free(parser: argparse.ArgumentParser, name: str, prefix: str) -> str:
    """The flag for `name`, prefixed when another option already has it (e.g. a field named `seed`)."""
    wanted = flag(name)
    taken = parser._option_string_actions  # noqa: SLF001 - argparse offers no public lookup
    return wanted if wanted not in taken else flag(f"{prefix.rstrip(':')}.{name}")


def add_fields(parser: argparse.ArgumentParser, group: argparse._ArgumentGroup, infos: tuple[FieldInfo, ...],
               prefix: str, *, default_text: str | None = None) -> None:
    """One option per field of `infos` into `group`; dest is `prefix + field name`."""
    for info in infos:
        opt = _free(parser, info.name, prefix)
        dest = prefix + info.name
        common = dict(dest=dest, default=argparse.SUPPRESS)
        if info.nested:
            described = ", ".join(f"{name} ({_doc(fn)})" for name, fn in info.presets.items())
            group.add_argument(opt, choices=info.choices, metavar="{" + ",".join(info.choices or ()) + "}",
                               help=(f"{info.doc}: start from the spec's default or a preset"
                                     + (f": {described}" if described else "")
                                     + f"; {flag(info.name)}-* options override single fields")
                               .replace("%", "%%"), **common)
        elif info.kind is bool:
            group.add_argument(opt, action=argparse.BooleanOptionalAction,
                               help=describe_help(info, default_text), **common)
        elif info.choices:
            group.add_argument(opt, choices=info.choices, help=describe_help(info, default_text), **common)
        else:
            kind = info.kind if info.kind in (int, float) else literal
            metavar = {int: "INT", float: "FLOAT"}.get(info.kind, "VALUE")
            group.add_argument(opt, type=kind, metavar=metavar, help=describe_help(info, default_text), **common)


def _doc(fn: Any) -> str:
    text = (getattr(fn, "__doc__", "") or "").strip()
    return text.splitlines()[0].rstrip(".") if text else "preset"


def values(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """The options given on the command line for one prefix, by field name."""
    return {key[len(prefix):]: value for key, value in vars(args).items() if key.startswith(prefix)}
