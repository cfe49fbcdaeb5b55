"""A SPICE deck as checked parts, rendered to text deterministically.

Element lines are built only by the functions here, from `ident`-checked names and
`spice_number`-formatted values, so no caller text reaches ngspice unchecked. A `Deck`
renders three ways: for a person (`print` results), for the subprocess engine (`write`
binary raw files) and, circuit only, for the shared-library engine (which drives the
analyses itself).

Library files (`circuits/*.lib`) are either `.include`d from a folder (the engines, the
benches in `netlists/`) or, with no folder given, pasted in between
`* ---- begin circuits/<name> ----` and `* ---- end circuits/<name> ----` comment lines, so
that a stored or returned deck (`SimResult.netlist`, the HDF5 `netlist`) runs with
`ngspice -b` anywhere. Several decks of one case are joined by `DECK_SEPARATOR`;
`split_decks` takes them apart again, each a runnable deck.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from ..errors import SpecError
from ..resources import circuits_dir
from ..units import ident, spice_number

_SAFE_PATH = re.compile(r"[A-Za-z0-9_./+-]+\Z")
_SAFE_TEXT = re.compile(r"[A-Za-z0-9_ .,:;=+()/#%x*-]*\Z")
_MAX_COMMAND_CHARS = 900  # ngspice's shared API takes commands up to 1023 characters

DECK_SEPARATOR = "\n* ---- next deck ----\n"  # between the decks of one case in a netlist text


def split_decks(text: str) -> list[str]:
    """The runnable decks in a netlist text of one case (`SimResult.netlist`, the HDF5 `netlist`).

    A case may run several decks; `pycosim.simulate` joins them with `DECK_SEPARATOR`. Each
    returned deck ends with `.end` and, when it was stored with its library inlined (as
    `SimResult.netlist` is), runs with `ngspice -b deck.cir` in any folder.
    """
    return text.split(DECK_SEPARATOR)


_LIB_CACHE: dict[tuple[str, int, int], str] = {}


def library_text(name: str) -> str:
    """Text of library file `name` (e.g. `opamp.lib`) from `pycosim.resources.circuits_dir()`."""
    path = circuits_dir() / ident_file(name)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SpecError(f"library {name!r} is not in {circuits_dir()}; known: "
                        f"{', '.join(sorted(p.name for p in circuits_dir().glob('*.lib')))}") from None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _LIB_CACHE:
        _LIB_CACHE[key] = path.read_text().replace("\r\n", "\n").rstrip("\n")
    return _LIB_CACHE[key]


def inlined_library(name: str) -> str:
    """Library `name` pasted between `* ---- begin circuits/<name> ----` / `* ---- end ... ----` lines."""
    return (f"* ---- begin circuits/{ident_file(name)} ----\n{library_text(name)}\n"
            f"* ---- end circuits/{ident_file(name)} ----")


def node_name(node: str) -> str:
    """A node: ground `0` or an identifier."""
    return node if node == "0" else ident(node)


def safe_path(path: str | Path) -> str:
    """Return `path` as text if it holds only [A-Za-z0-9_./+-] (no spaces, quotes or newlines)."""
    text = str(path)
    if not _SAFE_PATH.match(text):
        raise SpecError(f"path {text!r} cannot be written into a SPICE deck: use [A-Za-z0-9_./+-] only")
    return text


def safe_text(text: str) -> str:
    """Return `text` for a comment line if it is one line of plain characters."""
    if not _SAFE_TEXT.match(text):
        raise SpecError(f"comment text {text!r} has characters not allowed in a deck comment")
    return text


def resistor(name: str, a: str, b: str, r_ohm: float) -> str:
    return f"{ident('R' + name)} {node_name(a)} {node_name(b)} {spice_number(r_ohm)}"


def resistor_agauss(name: str, a: str, b: str, g_mean_siemens: float, g_sigma_siemens: float) -> str:
    """A resistor whose conductance ngspice draws once, at parse, from N(g_mean, g_sigma) (`agauss`
    in the element value: one draw per element line, reproducible under `.options seed=N`)."""
    return (f"{ident('R' + name)} {node_name(a)} {node_name(b)} "
            f"{{1/agauss({spice_number(g_mean_siemens)}, {spice_number(g_sigma_siemens)}, 1)}}")


def capacitor(name: str, a: str, b: str, c_farad: float) -> str:
    return f"{ident('C' + name)} {node_name(a)} {node_name(b)} {spice_number(c_farad)}"


def vsource_ac(name: str, plus: str, minus: str, dc_volt: float, ac_volt: float) -> str:
    """Voltage source with a DC value and an AC magnitude (for `ac` analyses)."""
    return (f"{ident('V' + name)} {node_name(plus)} {node_name(minus)} dc {spice_number(dc_volt)} "
            f"ac {spice_number(ac_volt)}")


def isource_ac(name: str, plus: str, minus: str, ac_amp: float) -> str:
    """Current source, DC 0, AC magnitude `ac_amp` (A), flowing from `plus` through the source into `minus`."""
    return f"{ident('I' + name)} {node_name(plus)} {node_name(minus)} dc 0 ac {spice_number(ac_amp)}"


def inductor(name: str, a: str, b: str, l_henry: float) -> str:
    return f"{ident('L' + name)} {node_name(a)} {node_name(b)} {spice_number(l_henry)}"


def vsource_dc(name: str, plus: str, minus: str, v_volt: float) -> str:
    return f"{ident('V' + name)} {node_name(plus)} {node_name(minus)} dc {spice_number(v_volt)}"


def vsource_pwl(name: str, plus: str, minus: str, t_s: Sequence[float], v_volt: Sequence[float]) -> str:
    """Piece-wise linear source; continuation lines keep each line short."""
    if len(t_s) != len(v_volt) or len(t_s) < 1:
        raise SpecError("PWL source needs equally long, non-empty time and value lists")
    pairs = [f"{spice_number(t)} {spice_number(v)}" for t, v in zip(t_s, v_volt)]
    lines = [f"{ident('V' + name)} {node_name(plus)} {node_name(minus)} dc {spice_number(v_volt[0])} pwl("]
    lines += [f"+ {p}" for p in pairs]
    lines.append("+ )")
    return "\n".join(lines)


def vcvs(name: str, plus: str, minus: str, ctrl_plus: str, ctrl_minus: str, gain: float) -> str:
    """Voltage-controlled voltage source V(plus, minus) = gain * V(ctrl_plus, ctrl_minus)."""
    return (f"{ident('E' + name)} {node_name(plus)} {node_name(minus)} {node_name(ctrl_plus)} "
            f"{node_name(ctrl_minus)} {spice_number(gain)}")


def ccvs(name: str, plus: str, minus: str, sense_source: str, r_ohm: float) -> str:
    """Current-controlled voltage source V(plus, minus) = r_ohm * I(V<sense_source>)."""
    return f"{ident('H' + name)} {node_name(plus)} {node_name(minus)} {ident('V' + sense_source)} {spice_number(r_ohm)}"


def instance(name: str, nodes: Sequence[str], subckt: str, params: dict[str, float]) -> str:
    """Subcircuit instance `X<name> nodes... subckt params: k=v ...`."""
    node_text = " ".join(node_name(n) for n in nodes)
    par = " ".join(f"{ident(k)}={spice_number(v)}" for k, v in params.items())
    return f"{ident('X' + name)} {node_text} {ident(subckt)}" + (f" params: {par}" if par else "")


def alter_dc(source: str, v_volt: float) -> str:
    """Control command setting a DC source's value between analyses."""
    return f"alter {ident('V' + source).lower()} dc={spice_number(v_volt)}"


def op() -> str:
    return "op"


def tran(t_step_s: float, t_stop_s: float, t_max_step_s: float | None = None) -> str:
    cmd = f"tran {spice_number(t_step_s)} {spice_number(t_stop_s)}"
    if t_max_step_s is not None:
        cmd += f" 0 {spice_number(t_max_step_s)}"
    return cmd


def ac_dec(points_per_decade: int, f_start_hz: float, f_stop_hz: float) -> str:
    return f"ac dec {int(points_per_decade)} {spice_number(f_start_hz)} {spice_number(f_stop_hz)}"


def option(name: str, value: float | None = None) -> str:
    return f".options {ident(name)}" + ("" if value is None else f"={spice_number(value)}")


def option_int(name: str, value: int) -> str:
    """`.options name=value` with an integer value (e.g. `seed`)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SpecError(f".options {name} needs an integer, got {value!r}")
    return f".options {ident(name)}={int(value)}"


def device_parameter(element: str, parameter: str) -> str:
    """Vector name of an element's parameter, e.g. `@rk0c1_2[resistance]` (save it, read it back)."""
    return f"@{ident(element).lower()}[{ident(parameter).lower()}]"


def node_voltage(node: str) -> str:
    return f"v({node_name(node).lower()})"


def branch_current(source: str) -> str:
    """Vector name of the current through voltage source V<source> (plus → minus inside it)."""
    return f"i({ident('V' + source).lower()})"


@dataclass(frozen=True)
class Analysis:
    """One analysis command and the `alter` commands applied just before it."""

    command: str
    alters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Deck:
    """A checked, renderable SPICE deck: includes, element lines, saved vectors, analyses."""

    title: str
    elements: tuple[str, ...]
    saves: tuple[str, ...]
    analyses: tuple[Analysis, ...]
    includes: tuple[str, ...] = ()  # file names inside circuits/, e.g. "opamp.lib"
    options: tuple[str, ...] = ()
    comments: tuple[str, ...] = field(default=())
    solver: Literal["klu", "sparse"] = "klu"  # ngspice >= 42 obeys `.options klu`; 39 ignores it
    user_libraries: tuple[tuple[str, str], ...] = ()  # (label, checked text) of users' subcircuit files, pasted in

    def __post_init__(self) -> None:
        if self.solver not in ("klu", "sparse"):
            raise SpecError(f"Deck.solver must be 'klu' or 'sparse', got {self.solver!r}")

    def circuit(self, lib_dir: str | Path | None = None) -> str:
        """Title, comments, libraries, options and elements (no `.end`).

        lib_dir: folder the libraries are `.include`d from (absolute, or relative to where
        ngspice runs); None pastes the library text in, so the deck needs no other file.
        """
        lines = [f"* {safe_text(self.title)}"]
        lines += [f"* {safe_text(c)}" for c in self.comments]
        if lib_dir is None:
            lines += [inlined_library(inc) for inc in self.includes]
        else:
            safe_path(lib_dir)
            lines += [f".include {safe_path(Path(lib_dir) / ident_file(inc))}" for inc in self.includes]
        for label, text in self.user_libraries:   # always pasted: a deck never names a caller's path
            lines += [f"* ---- begin user subcircuit {safe_text(label)} ----", text,
                      f"* ---- end user subcircuit {safe_text(label)} ----"]
        if self.solver == "klu":
            lines.append(".options klu")
        lines += list(self.options)
        lines += list(self.elements)
        return "\n".join(lines)

    def save_commands(self) -> list[str]:
        """`save` control commands, split so each stays under ngspice's command-length limit."""
        cmds: list[str] = []
        current: list[str] = []
        for vec in self.saves:
            if current and len("save " + " ".join(current + [vec])) > _MAX_COMMAND_CHARS:
                cmds.append("save " + " ".join(current))
                current = []
            current.append(vec)
        if current:
            cmds.append("save " + " ".join(current))
        return cmds

    def render(self, lib_dir: str | Path | None = None, *, outputs: Literal["print", "raw"] = "print",
               raw_paths: Sequence[str | Path] = ()) -> str:
        """Full deck with a `.control` block: `print` results (by hand) or `write` raw files (engine).

        lib_dir: folder to `.include` the libraries from; None (the default) inlines them, so the
        text runs with `ngspice -b` in any folder (what `SimResult.netlist` and the store hold).
        """
        if outputs == "raw" and len(raw_paths) != len(self.analyses):
            raise ValueError("one raw path per analysis is needed")
        ctl = [".control", "set filetype=binary"] if outputs == "raw" else [".control"]
        ctl += self.save_commands()
        for k, an in enumerate(self.analyses):
            ctl += list(an.alters)
            ctl.append(an.command)
            if outputs == "raw":
                ctl.append(f"write {safe_path(raw_paths[k])}")  # the plot holds the saved vectors only
            elif an.command == "op":
                ctl.append(f"print {' '.join(self.saves)}")
            else:
                ctl.append(f"print {' '.join(self.saves[:4])}")
        ctl += ["quit", ".endc"]
        return self.circuit(lib_dir) + "\n" + "\n".join(ctl) + "\n.end\n"

    def sha256(self) -> str:
        """Content hash of the self-contained deck (library text inlined): independent of where
        the library lives, and a changed library gives a new hash."""
        return hashlib.sha256(self.render().encode()).hexdigest()


def ident_file(name: str) -> str:
    """A library file name: an identifier with one extension (e.g. `opamp.lib`)."""
    stem, dot, ext = name.partition(".")
    ident(stem)
    if dot:
        ident(ext)
    return name
