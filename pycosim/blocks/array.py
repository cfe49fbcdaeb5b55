"""A memristor array in a deck: cells between word and bit lines, with wire segments (DESIGN §4).

One renderer for every block that holds an array (the crossbar, each layer of the integrator
loop; a LIF layer fed by a crossbar and a TCAM render theirs the same way). Geometry, CrossSim's
convention, one wire segment per cell: word line r is driven at column 0, port → segment → cell
(r, 0) → segment → … → cell (r, cols−1); bit line c is read below the last row, cell (0, c) →
segment → … → cell (rows−1, c) → segment → port. A cell joins its word-line node to its bit-line
node, so current flows word → bit line for positive inputs. With r_wire_ohm = 0 every line is a
single node, its port, and the array computes exactly I = V·G into ports held at 0 V.

The ports are plain node names: a word port is whatever drives the line (a DAC source, an op-amp
output, a bias reference), a bit port whatever reads it (a TIA's or integrator's summing node, a
membrane capacitor, a match line). Cells below `G_OPEN_SIEMENS` are open and left out.

A user cell's internal ports (a memristor's state node; `Subcircuit.instance` gives each the node
`<instance>_<port>`) are saved and returned the same way by every transient block that holds one
(`cell_internal_ports`, `closed_cells`, `cell_port_saves`, `cell_port_outputs`). Circuit world: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import SpecError
from ..spice import deck as d
from ..subcircuit import Subcircuit

G_OPEN_SIEMENS = 1e-15  # cells below this conductance are left out of the deck (open)

Cell = Callable[[str, str, str, float], list[str]]
"""Renders one cell: (element name, word-line node, bit-line node, conductance S) -> deck lines."""


def resistor_cell(name: str, word: str, bit: str, g_siemens: float) -> list[str]:
    """A linear cell: `R<name> word bit 1/g`."""
    return [d.resistor(name, word, bit, 1.0 / g_siemens)]


def subcircuit_cell(subckt: str, params: dict[str, float] | None = None) -> Cell:
    """Cells as instances `X<name> word bit <subckt> params: g=<g> k=v ...` (e.g. `rram_1t1r`)."""
    fixed = dict(params or {})

    def cell(name: str, word: str, bit: str, g_siemens: float) -> list[str]:
        return [d.instance(name, [word, bit], subckt, {"g": g_siemens} | fixed)]

    return cell


@dataclass(frozen=True)
class ArrayLines:
    """Where an array's lines meet the rest of the circuit, and their wires.

    word_ports (rows,): the node driving each word line at column 0; bit_ports (cols,): the node
    each bit line is read into below the last row; r_wire_ohm: resistance of one segment;
    c_wire_farad: capacitance to ground of each segment's cell-side node (only with wires);
    prefix: starts this array's wire-node and element names (word nodes `<prefix>w<r>_<c>`, bit
    nodes `<prefix>b<r>_<c>`, segments `R<prefix>w<r>_<c>`, `R<prefix>b<r>_<c>`), so several
    arrays share a deck.
    """

    word_ports: tuple[str, ...]
    bit_ports: tuple[str, ...]
    r_wire_ohm: float = 0.0
    c_wire_farad: float = 0.0
    prefix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "word_ports", tuple(self.word_ports))
        object.__setattr__(self, "bit_ports", tuple(self.bit_ports))
        if not (self.r_wire_ohm >= 0 and self.c_wire_farad >= 0):
            raise SpecError(f"ArrayLines: r_wire_ohm = {self.r_wire_ohm!r} and c_wire_farad = {self.c_wire_farad!r} "
                            "must be >= 0")

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.word_ports), len(self.bit_ports)

    @property
    def wired(self) -> bool:
        return self.r_wire_ohm > 0

    def word_node(self, r: int, c: int) -> str:
        """The word-line node of cell (r, c)."""
        return f"{self.prefix}w{r}_{c}" if self.wired else self.word_ports[r]

    def bit_node(self, r: int, c: int) -> str:
        """The bit-line node of cell (r, c)."""
        return f"{self.prefix}b{r}_{c}" if self.wired else self.bit_ports[c]


def array_elements(lines: ArrayLines, g_siemens: np.ndarray, *, cell: Cell = resistor_cell,
                   cell_name: Callable[[int, int], str] | None = None, column_major: bool = False,
                   drop_open_lines: bool = False) -> list[str]:
    """Deck lines of the array: word-line segments (row by row), bit-line segments (column by
    column), then the cells.

    g_siemens: (rows, cols) cell conductances, S; cells below G_OPEN_SIEMENS are left out.
    cell: how a cell is rendered (`resistor_cell`, `subcircuit_cell(...)`); cell_name(r, c): its
    element name (default `<prefix>c<r>_<c>`); column_major: cells column by column instead of
    row by row. drop_open_lines: leave out the wires of a line whose cells are all open (it carries
    no current; a word line whose driver is not in the deck must be dropped so, or it floats).
    """
    g = np.asarray(g_siemens, dtype=np.float64)
    rows, cols = lines.shape
    if g.shape != (rows, cols):
        raise SpecError(f"array {lines.prefix or 'cells'}: conductances have shape {g.shape}, the lines "
                        f"are {rows}x{cols}")
    name = cell_name or (lambda r, c: f"{lines.prefix}c{r}_{c}")
    closed = g >= G_OPEN_SIEMENS
    el: list[str] = []
    if lines.wired:
        p, r_w, c_w = lines.prefix, lines.r_wire_ohm, lines.c_wire_farad
        for r in range(rows):  # word lines, driven at column 0
            if drop_open_lines and not closed[r].any():
                continue
            prev = lines.word_ports[r]
            for c in range(cols):
                node = lines.word_node(r, c)
                el.append(d.resistor(f"{p}w{r}_{c}", prev, node, r_w))
                if c_w > 0:
                    el.append(d.capacitor(f"{p}w{r}_{c}", node, "0", c_w))
                prev = node
        for c in range(cols):  # bit lines, read below the last row
            if drop_open_lines and not closed[:, c].any():
                continue
            for r in range(rows):
                nxt = lines.bit_node(r + 1, c) if r + 1 < rows else lines.bit_ports[c]
                el.append(d.resistor(f"{p}b{r}_{c}", lines.bit_node(r, c), nxt, r_w))
                if c_w > 0:
                    el.append(d.capacitor(f"{p}b{r}_{c}", lines.bit_node(r, c), "0", c_w))
    order = ([(r, c) for c in range(cols) for r in range(rows)] if column_major
             else [(r, c) for r in range(rows) for c in range(cols)])
    for r, c in order:
        if closed[r, c]:
            el += cell(name(r, c), lines.word_node(r, c), lines.bit_node(r, c), float(g[r, c]))
    return el


def voltage_drivers(ports: Sequence[str], *, v_volt: Sequence[float] | None = None,
                    pwl: tuple[np.ndarray, np.ndarray] | None = None, r_source_ohm: float = 0.0,
                    source: str = "in", source_node: str = "s", series: str = "drv") -> list[str]:
    """One voltage source per word line: `V<source><r>` (DC v_volt[r], or PWL (t_s (m,), v (m, rows)))
    into port r, behind `R<series><r>` = r_source_ohm from node `<source_node><r>` when that is > 0."""
    if (v_volt is None) == (pwl is None):
        raise SpecError("voltage_drivers takes either v_volt or pwl")
    el: list[str] = []
    for r, port in enumerate(ports):
        src = f"{source_node}{r}" if r_source_ohm > 0 else port
        if pwl is not None:
            el.append(d.vsource_pwl(f"{source}{r}", src, "0", pwl[0], pwl[1][:, r]))
        else:
            el.append(d.vsource_dc(f"{source}{r}", src, "0", v_volt[r]))
        if r_source_ohm > 0:
            el.append(d.resistor(f"{series}{r}", src, port, r_source_ohm))
    return el


def cell_internal_ports(spec: object) -> tuple[str, ...]:
    """A block's user cell's ports after the word- and bit-line sides (e.g. a state node): `spec.cell.ports[2:]`
    for a `Subcircuit`, () for the built-in cells (and a spec without a cell)."""
    cell = getattr(spec, "cell", None)
    return cell.ports[2:] if isinstance(cell, Subcircuit) else ()


def closed_cells(g_siemens: np.ndarray, name: Callable[[int, int], str] = lambda r, c: f"c{r}_{c}"
                 ) -> tuple[tuple[tuple[int, int], str], ...]:
    """((r, c), instance name) of every cell of the array that is in the deck (g >= G_OPEN_SIEMENS), row by row;
    `name` as `array_elements`' cell_name (default `c<r>_<c>`)."""
    closed = np.asarray(g_siemens) >= G_OPEN_SIEMENS
    return tuple(((int(r), int(c)), name(int(r), int(c))) for r, c in zip(*np.nonzero(closed)))


def cell_port_saves(ports: Sequence[str], cells: Sequence[tuple[tuple[int, ...], str]]) -> tuple[str, ...]:
    """v(<instance>_<port>) of every internal port (port by port) of every cell instance in `cells` ((index,
    instance name), e.g. from `closed_cells`)."""
    return tuple(d.node_voltage(f"{inst}_{port}") for port in ports for _, inst in cells)


def cell_port_outputs(ports: Sequence[str], cells: Sequence[tuple[tuple[int, ...], str]], shape: tuple[int, ...],
                      vectors: Mapping[str, np.ndarray], lead: tuple[int, ...],
                      resample: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """`v_cell_<port>_volt` per internal port, shape lead + shape, V: each cell's saved node voltage (the vector
    of `cell_port_saves`, passed through `resample` onto the block's output grid, which must give shape `lead`)
    at [..., *index]; NaN where a cell is not in `cells` (open, not in the deck)."""
    out = {}
    for port in ports:
        v = np.full(tuple(lead) + tuple(shape), np.nan)
        for index, inst in cells:
            y = np.asarray(vectors[d.node_voltage(f"{inst}_{port}")], dtype=np.float64)
            v[(Ellipsis, *index)] = y if resample is None else resample(y)
        out[f"v_cell_{port}_volt"] = v
    return out
