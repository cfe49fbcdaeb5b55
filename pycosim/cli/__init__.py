"""`pycosim` command line: netlist, simulate, sweep, calibrate, validate, report, info, demo.

Every command loops over the block table (`pycosim.blocks.registry`): `netlist BLOCK` and
`simulate BLOCK` take any registered block, with options generated from its spec fields (units
from the one suffix table, ranges from the spec's own checks); `--plugin MODULE` (before the
command) registers more. A failure pycosim expects — bad input, a missing or malformed file,
Ctrl-C — is one line `pycosim: error: ...` on stderr, exit 2 (130 for Ctrl-C), no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import tomllib
import warnings
from typing import Any, Sequence

from ..errors import PycosimError, SpiceError
from ..nonideal import Nonidealities
from .casecmds import cmd_info
from .config import load_sweep_config
from .stimulus import load_json

__all__ = ["main", "build_parser", "load_sweep_config", "load_json"]

COMMANDS = ("netlist", "simulate", "sweep", "calibrate", "validate", "report", "info", "demo")


def build_parser(blocks: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    """The parser over `blocks` (default: every registered block)."""
    from ..blocks.registry import registered_blocks
    from .parser import build_parser as _build

    return _build(registered_blocks() if blocks is None else blocks)


def _plugins(argv: Sequence[str]) -> list[str]:
    """Modules named by --plugin before the command (they decide which blocks the parser offers)."""
    out, it = [], iter(argv)
    for tok in it:
        if tok in COMMANDS:
            break
        if tok == "--plugin":
            out.append(next(it, ""))
        elif tok.startswith("--plugin="):
            out.append(tok.partition("=")[2])
    return out


def _error(message: str) -> None:
    print(f"pycosim: error: {message}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    """The error's text on one line; for ngspice failures, the first line and ngspice's last word."""
    if isinstance(exc, SpiceError):
        head = str(exc).splitlines()[0]
        said = [ln.strip() for ln in exc.ngspice_log.splitlines() if ln.strip()]
        return head + (f" (ngspice: {said[-1]})" if said else "")
    return " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())


def _os_line(exc: OSError) -> str:
    what = exc.strerror or type(exc).__name__
    return f"{exc.filename}: {what.lower()}" if exc.filename else str(exc)


def _refuse_extras(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str],
                   blocks: dict[str, Any]) -> None:
    """Unknown options: name an unhonoured nonideality as such, suggest the nearest option, exit 2."""
    command, name = getattr(args, "command", None), getattr(args, "block", None)
    subs = getattr(parser, "subparsers", {})
    sp = subs.get((command, name)) or subs.get((command, None)) or parser
    block = blocks.get(name) if isinstance(name, str) else None
    every_ni = [f.name for f in dataclasses.fields(Nonidealities)]
    for tok in extras:
        opt = tok.split("=")[0]
        field = opt.lstrip("-").replace("-", "_")
        if block is not None and opt.startswith("--") and field in every_ni and field not in block.honours:
            sp.error(f"{opt}: the {block.name} block does not realize Nonidealities field {field}; it honours: "
                     f"{', '.join(block.honours) or 'none'}")
    options = [o for o in sp._option_string_actions if o.startswith("--")]  # noqa: SLF001
    near = [difflib.get_close_matches(t.split("=")[0], options, n=1) for t in extras if t.startswith("--")]
    hint = "; ".join(f"{t.split('=')[0]}: did you mean {m[0]}?" for t, m in
                     zip([t for t in extras if t.startswith("--")], near) if m)
    sp.error(f"unrecognized arguments: {' '.join(extras)}" + (f" ({hint})" if hint else ""))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `pycosim` command line; returns the exit status."""
    from ..blocks.registry import load_plugin, registered_blocks

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        for module in _plugins(argv):
            load_plugin(module)
        blocks = registered_blocks()
    except PycosimError as exc:
        _error(_one_line(exc))
        return 2
    parser = build_parser(blocks)
    args, extras = parser.parse_known_args(argv)
    if extras:
        _refuse_extras(parser, args, extras, blocks)
    if args.command is None:
        if not args.version:
            parser.error("a command is required")
        args = argparse.Namespace(command="info", func=cmd_info, engine="shared", block=None)
    block = getattr(args, "block", None)
    args.block_record = blocks[block] if isinstance(block, str) else None
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run a parsed command: expected failures are one line on stderr (exit 2; Ctrl-C 130)."""
    from .storecmds import Interrupted

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            return args.func(args)
        except Interrupted as exc:
            _error(str(exc))
            return 130
        except KeyboardInterrupt:
            _error("interrupted")
            return 130
        except PycosimError as exc:
            _error(_one_line(exc))
        except tomllib.TOMLDecodeError as exc:
            _error(f"malformed TOML: {exc}")
        except OSError as exc:
            _error(_os_line(exc))
        finally:
            for msg in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
                print(f"pycosim: warning: {msg}", file=sys.stderr)
    return 2
