"""A user's own part in a block: `Subcircuit`, a `.subckt` from the user's file bound by a port contract.

The file is read and checked every time a deck is built (so a deck holds exactly the text that was checked):
plain ASCII, only `.subckt`/`.ends`/`.param`/`.func`/`.model` cards besides element lines, comments and
continuations — no `.control`/`.endc`, no `shell`, no `.include`/`.lib` of another path, no analysis or output
card. Each refusal is a `SpecError` naming the file and the line. The subcircuit named `name` must exist with
exactly `len(ports)` nodes; the first ports are the part's terminals in the block's order (a cell: word-line
side, bit-line side; an op-amp: in+, in−, out), the rest get fresh internal nodes per instance. Parameter names
are identifiers and values finite numbers. The deck pastes the checked text (never a path the caller controls),
so its sha256 — in the case id — changes with one character of the file. Circuit world: no torch.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import SpecError
from .specjson import json_type
from .units import ident, spice_number

ALLOWED_CARDS = (".subckt", ".ends", ".param", ".func", ".model")
MAX_FILE_BYTES = 1_000_000
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([^\s{}]+|\{[^}]*\})")
_SPICE_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?([a-z]*)$")
_NOT_FINITE = ("inf", "+inf", "-inf", "infinity", "nan", "+nan", "-nan")


@json_type
@dataclass(frozen=True, kw_only=True)
class Subcircuit:
    """A user's `.subckt` as a block's part (a memristor compact model, a transistor-level op-amp).

    path: the SPICE file; name: the `.subckt` in it; ports: its nodes in order (the block's terminals first,
    then internal ports such as a state-variable node); params: fixed instance parameters; conductance_param:
    for a cell, the parameter that receives each cell's programmed conductance in S (None for other parts).
    """

    path: str
    name: str
    ports: tuple[str, ...]
    params: tuple[tuple[str, float], ...] | Mapping[str, float] = ()
    conductance_param: str | None = None
    sha256: str = ""   # of the file's text, set at construction (a changed file is a different part)

    def __post_init__(self) -> None:
        o = "Subcircuit"
        object.__setattr__(self, "path", str(self.path))
        object.__setattr__(self, "ports", tuple(self.ports))
        params = dict(self.params)
        for k, v in params.items():
            _ident(f"{o}.params", k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                raise SpecError(f"{o}.params[{k!r}] = {v!r} must be a finite number")
        object.__setattr__(self, "params", tuple(sorted((k, float(v)) for k, v in params.items())))
        _ident(f"{o}.name", self.name)
        if len(self.ports) < 1:
            raise SpecError(f"{o}.ports must name at least one node")
        for p in self.ports:
            _ident(f"{o}.ports", p)
        if self.conductance_param is not None:
            _ident(f"{o}.conductance_param", self.conductance_param)
            if self.conductance_param in dict(self.params):
                raise SpecError(f"{o}.conductance_param {self.conductance_param!r} is also in params")
        object.__setattr__(self, "sha256", hashlib.sha256(self.text().encode()).hexdigest())

    @property
    def label(self) -> str:
        """`<name> sha256 <first 12 hex digits>`: how decks and reports name the part."""
        return f"{self.name} sha256 {self.sha256[:12]}"

    def library(self) -> tuple[str, str]:
        """(label, checked text) for `Deck.user_libraries`."""
        return self.label, self.text()

    def text(self) -> str:
        """The file's text, checked (see the module docstring); SpecError naming the file and line otherwise."""
        p = Path(self.path)
        if not p.is_file():
            raise SpecError(f"Subcircuit.path {self.path!r} is not a file")
        raw = p.read_bytes()
        if len(raw) > MAX_FILE_BYTES:
            raise SpecError(f"{self.path}: {len(raw)} bytes, allowed <= {MAX_FILE_BYTES}")
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise SpecError(f"{self.path}: not plain ASCII (byte {exc.start})") from None
        check_library_text(text, self.path)
        n_nodes, line = subckt_nodes(text, self.name, self.path)
        if n_nodes != len(self.ports):
            raise SpecError(f"{self.path}:{line}: .subckt {self.name} has {n_nodes} nodes, Subcircuit.ports names "
                            f"{len(self.ports)} ({', '.join(self.ports)})")
        return text.replace("\r\n", "\n").rstrip("\n")

    def instance(self, inst: str, terminals: tuple[str, ...], conductance_siemens: float | None = None,
                 internal_prefix: str | None = None) -> str:
        """`X<inst> <terminals> <fresh internal nodes> <name> params: ...` — terminals fill the first ports, the
        others become `<internal_prefix or inst>_<port>`; a cell's conductance goes to `conductance_param`."""
        if len(terminals) > len(self.ports):
            raise SpecError(f"{self.name}: {len(terminals)} terminals for {len(self.ports)} ports")
        prefix = internal_prefix or inst
        nodes = list(terminals) + [f"{prefix}_{p}" for p in self.ports[len(terminals):]]
        params = dict(self.params)
        if self.conductance_param is not None:
            if conductance_siemens is None:
                raise SpecError(f"{self.name}: a cell instance needs its conductance")
            params[self.conductance_param] = conductance_siemens
        par = " ".join(f"{k}={spice_number(v)}" for k, v in params.items())
        return f"X{ident(inst)} {' '.join(ident(n) if n != '0' else n for n in nodes)} {self.name}" + (
            f" params: {par}" if par else "")


def _ident(where: str, name: object) -> None:
    try:
        ident(name)  # type: ignore[arg-type]
    except SpecError:
        raise SpecError(f"{where} = {name!r} must be an identifier [A-Za-z][A-Za-z0-9_]*") from None


def check_library_text(text: str, where: str) -> None:
    """Refuse anything but subcircuit definitions: SpecError `<where>:<line>: ...`."""
    for k, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        s = line.strip()
        if not s or s[0] in "*;$":
            continue
        low = s.lower()
        words = [w.lower() for w in _WORD.findall(low)]
        if "shell" in words:
            raise SpecError(f"{where}:{k}: 'shell' is not allowed in a user subcircuit file")
        if low.startswith("."):
            card = low.split()[0]
            if card not in ALLOWED_CARDS:
                raise SpecError(f"{where}:{k}: the card {card} is not allowed in a user subcircuit file "
                                f"(allowed: {', '.join(ALLOWED_CARDS)}; no .control, .include, analyses or output)")
            if card in (".param", ".subckt"):
                _check_parameter_values(low, f"{where}:{k}")
        elif low.startswith("+"):
            _check_parameter_values(low, f"{where}:{k}")
        elif low[0].isalpha():
            continue
        else:
            raise SpecError(f"{where}:{k}: a line must be an element, a card, a comment or a continuation: {s[:40]!r}")


def _check_parameter_values(line: str, where: str) -> None:
    """`name=value` pairs of a .param/.subckt line (or its continuation): a literal value must be a finite
    number (an expression in braces or a parameter name is left to ngspice)."""
    for name, value in _ASSIGN.findall(line):
        v = value.strip()
        if v.startswith("{"):
            continue
        if v in _NOT_FINITE:
            raise SpecError(f"{where}: parameter {name} = {v} must be a finite number")
        m = _SPICE_NUMBER.match(v)
        if m and not math.isfinite(float(m.group(1) + (m.group(2) or ""))):
            raise SpecError(f"{where}: parameter {name} = {v} must be a finite number")


def subckt_nodes(text: str, name: str, where: str) -> tuple[int, int]:
    """(number of nodes, line) of `.subckt <name>` in `text` (continuation lines joined); SpecError if absent."""
    lines = text.replace("\r\n", "\n").split("\n")
    for k, line in enumerate(lines):
        tok = line.split()
        if len(tok) >= 2 and tok[0].lower() == ".subckt" and tok[1].lower() == name.lower():
            for cont in lines[k + 1:]:
                if not cont.lstrip().startswith("+"):
                    break
                tok += cont.lstrip()[1:].split()
            nodes = 0
            for t in tok[2:]:
                if t.lower() in ("params:", "param:") or "=" in t:
                    break
                nodes += 1
            return nodes, k + 1
    raise SpecError(f"{where}: no .subckt {name} in the file")


def check_cell(owner: str, cell: object, sides: str = "word-line side, bit-line side") -> None:
    """A block's `cell=` (`owner`, e.g. "LIFSpec.cell"): None (the built-in cells) or a Subcircuit usable as a
    two-terminal cell (conductance_param named; at least two ports, `sides`); SpecError naming the field otherwise."""
    if cell is None:
        return
    if not isinstance(cell, Subcircuit):
        raise SpecError(f"{owner} = {cell!r} must be None (the built-in cells) or a pycosim.Subcircuit")
    if cell.conductance_param is None or len(cell.ports) < 2:
        raise SpecError(f"{owner}: the Subcircuit {cell.name!r} must name conductance_param and at least two ports "
                        f"({sides}), got conductance_param = {cell.conductance_param!r} and ports {cell.ports}")
    check_own_names(cell, owner)


@functools.lru_cache(maxsize=1)
def library_names() -> tuple[str, ...]:
    """Every `.subckt` and `.model` name pycosim's own library defines (circuits/*.lib): a user's part may neither
    reuse nor instance them, since it sits in decks beside them (or inside their wrappers)."""
    from .resources import circuits_dir

    names: set[str] = set()
    for lib in sorted(circuits_dir().glob("*.lib")):
        names |= {name.lower() for _, kind, name in _definitions_and_instances(lib.read_text()) if kind == "defines"}
    return tuple(sorted(names))


def check_part(sub: object, owner: str, *, what: str, ports: str, min_ports: int) -> "Subcircuit":
    """A block's user part (`owner`, e.g. "LIFSpec.comparator"): a Subcircuit with at least `min_ports` ports (`ports`
    names them in the block's order), no conductance_param, self-contained (`check_own_names`); SpecError naming the
    field otherwise."""
    if not isinstance(sub, Subcircuit):
        raise SpecError(f"{owner} = {sub!r} must be None (the built-in {what}) or a pycosim.Subcircuit")
    if len(sub.ports) < min_ports or sub.conductance_param is not None:
        raise SpecError(f"{owner}: the Subcircuit {sub.name!r} must have at least {min_ports} ports ({ports}, then "
                        f"internal ones) and no conductance_param, got ports {sub.ports} and conductance_param = "
                        f"{sub.conductance_param!r}")
    check_own_names(sub, owner)
    return sub


def check_own_names(sub: Subcircuit, owner: str) -> None:
    """The part is named apart from pycosim's library (`library_names`) and its file neither defines, instances nor
    uses as a model any of those names (it sits in decks beside them, or inside their wrappers); SpecError naming the
    field, and the file and line."""
    names = set(library_names())
    if sub.name.lower() in names:
        raise SpecError(f"{owner}: the name {sub.name!r} is pycosim's; rename the .subckt")
    for k, kind, name in _definitions_and_instances(sub.text()):
        if name.lower() in names:
            raise SpecError(f"{sub.path}:{k}: {owner}: the file {kind} {name!r}, one of pycosim's own "
                            f"({', '.join(library_names())}); the part must be self-contained: give it its own, "
                            "renamed")


def _definitions_and_instances(text: str) -> list[tuple[int, str, str]]:
    """(line, "defines"/"instances"/"uses the model", name) of every `.subckt`/`.model` card, X element and each
    word of a device element that takes a model (D, Q, M, J, S, W, Z: any of its words may name one), continuations
    joined."""
    out, lines = [], text.replace("\r\n", "\n").split("\n")
    for k, line in enumerate(lines, start=1):
        tok = line.split()
        if not tok or tok[0][0] in "*;$+":
            continue
        for cont in lines[k:]:
            if not cont.lstrip().startswith("+"):
                break
            tok += cont.lstrip()[1:].split()
        head = tok[0].lower()
        if head in (".subckt", ".model") and len(tok) > 1:
            out.append((k, "defines", tok[1].split("(")[0]))
        elif head[0] == "x":
            nodes = []
            for t in tok[1:]:
                if t.lower() in ("params:", "param:") or "=" in t:
                    break
                nodes.append(t)
            if nodes:
                out.append((k, "instances", nodes[-1]))
        elif head[0] in "dqmjswz":
            out += [(k, "uses the model", t) for t in tok[1:] if "=" not in t]
    return out


def swap_library(deck, library: str, name: str, sub: Subcircuit, terminals: tuple[str, ...],
                 body: tuple[str, ...] = ()):
    """`deck` with the user's part in place of pycosim's `library` (a circuits/ file, e.g. "opamp.lib"): the library
    is left out and the user's checked file is pasted in behind a wrapper `.subckt <name>` with the library's own
    interface line (read from the file; `body` lines before the part, which gets `terminals`), so every instance
    the block's decks make runs the user's part. Unchanged if the deck does not include `library`."""
    from dataclasses import replace

    from .spice.deck import library_text

    if library not in deck.includes:
        return deck
    header = next(line for line in library_text(library).splitlines()
                  if line.split()[:2] == [".subckt", name])
    wrapper = "\n".join([f"* pycosim wrapper: the `{name}` interface around the user's part {sub.label}", header, *body,
                         sub.instance("user", terminals, internal_prefix="u"), f".ends {name}"])
    libs = tuple(lib for lib in deck.user_libraries if lib != sub.library())
    return replace(deck, includes=tuple(i for i in deck.includes if i != library),
                   user_libraries=libs + (sub.library(), (f"{name} wrapper of {sub.label}", wrapper)))
