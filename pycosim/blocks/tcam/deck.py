"""The TCAM array's transient deck: every query a search cycle, all queries in one deck.

Circuit (DESIGN §4; subcircuits in `circuits/tcam.lib`):

    Vpre ── X p<w> (tcam_precharge, r_pre_ohm, control pc) ── ml<w> ── C ml<w> (C_ML, realized)
                                                               ├── C dev<w> (c_ml_device_farad)
                                                               ├── X s<w> (tcam_sense: comparator at
                                                               │     v_sense + offset, latch on trk) ── q<w>
                                                               └── wire ── m<w>_<b> ── X c<w>_<b> (cell)
    X c<w>_<b>: tcam_cell_nmos (model tcam_nmos, defined here) or tcam_cell_switch, with the
    realized memristors r0 = 1/g[w, b, 0] (on SL), r1 = 1/g[w, b, 1] (on SLB) and the device caps.
    V sl<b>, V slb<b>: the search-line drivers (PWL through every query).

With a user cell (`TCAMSpec.cell`, a `Subcircuit` for each memristor) cell (w, b) is written out
per branch instead: per branch k (0 on SL, 1 on SLB) the user's part `Xc<w>_<b>_<k> <cell node> c<w>_<b>_x<k>
<c<w>_<b>_<k>_<port> ...> <name> params: <conductance_param>=g[w, b, k]`, then tcam.lib's access device
with its capacitors, `Xac<w>_<b>_<k> c<w>_<b>_x<k> <gate> tcam_access_<access>` (the built-in cells use the
same subcircuit per branch); the file's checked text is pasted into the
deck (`Deck.user_libraries`) and the comments name it with its sha256. The part's internal ports
c<w>_<b>_<k>_<port> of every memristor are saved (observe: `v_cell_<port>_volt`).

Nodes: match lines ml<w> at the sense end (bit 0 side), latched decisions q<w> (above 0.5 V: a
match), search lines sl<b>/slb<b>, controls pc (precharge) and trk (latch tracks at 1 V). With
r_wire_ohm = 0 every cell sits on ml<w>; with wires, cell b on m<w>_<b>, one r_wire_ohm segment per
cell from the sense end (ml<w> → m<w>_0 → … → m<w>_<bits−1>).

Timing of query k (cycle start k·T, T = t_cycle_s; edges t_edge_s): the precharge switch closes at
k·T and opens from t_pre_s; the search lines of the query rise from t_eval_s and fall from
t_sl_fall_s; the latch tracks the comparator from k·T and holds from t_sense_s (its control reaches
0 V exactly at k·T + t_sense_s, a breakpoint, so ngspice has a time point there). The run ends with
a trailing precharge at n·T + t_pre_s. The transient starts from `.ic` (match lines, wire nodes and
every cell's internal nodes at v_pre_volt) with `uic`, time steps never above spec.max_step_s.

Solver: KLU (`Deck.solver`, the project default), kept because it is never slower here. Measured with
ngspice 46 on the shared 2-core host: the 16x32 search of 8 queries in tests/test_tcam_spice.py takes
1.65 s with KLU and 1.63 s with Sparse (median of 3, ngspice through the shared engine); a 64x64 search
of 2 queries 7.05 s (KLU) and 7.28 s (Sparse) of analysis time, of which factor + solve take 0.43 s and
0.62 s: loading the devices (4.2 s, 8192 MOSFETs and 16384 capacitors) and the truncation-error control
(1.5 s) dominate, not the linear solver. A 64x64 search of 100 queries took 448 s (4.5 s per query).
"""

from __future__ import annotations


import numpy as np

from ...nonideal import Nonidealities
from ...specjson import spec_digest
from ...subcircuit import Subcircuit
from ...spice import Analysis, Deck
from ...spice import deck as d
from ...units import ident, spice_number
from ..array import cell_internal_ports, cell_port_saves
from ..registry import Prepared
from .realization import TCAMRealization, realize_tcam
from .spec import TCAMSearch, TCAMSpec, branch_gates, check_shapes

NMOS_MODEL = "tcam_nmos"
COMPARATOR_GAIN = 1e3          # V/V of the comparator around its trip point (output clipped to [0, 1] V)
LATCH_R_OHM = 100.0            # latch track switch on-resistance, Ohm
LATCH_C_FARAD = 10e-15         # latch hold capacitor, F (track time constant 1 ps)
DECISION_HIGH_VOLT = 1.0       # latched logic level of a match; decisions are read at half of it


def nmos_model_line(spec: TCAMSpec) -> str:
    """`.model tcam_nmos nmos(level=1 …)`: kp, vto from the spec; no body effect, no channel-length
    modulation, no model capacitances (the device capacitances are explicit capacitors)."""
    return (f".model {ident(NMOS_MODEL)} nmos(level=1 kp={spice_number(spec.nmos_kp_a_per_v2)} "
            f"vto={spice_number(spec.nmos_vto_volt)} gamma=0 lambda=0 cgso=0 cgdo=0 cgbo=0 cbd=0 cbs=0 cj=0 cjsw=0)")


def precharge_edge_s(spec: TCAMSpec) -> float:
    """Closing (and opening) time of the precharge switch, s: t_edge_s, or t_pre_s/2 if that is shorter."""
    return min(spec.t_edge_s, 0.5 * spec.t_pre_s)


def run_stop_s(spec: TCAMSpec, n_queries: int) -> float:
    """End of the transient: n_queries cycles and a trailing precharge, s."""
    return n_queries * spec.t_cycle_s + spec.t_pre_s


def search_line_pwl(spec: TCAMSpec, driven: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(t_s, v_volt) of one search line driven high in the cycles where `driven` (n_queries,) is True,
    or None if it never is (a DC 0 V driver)."""
    if not np.any(driven):
        return None
    e, t_cycle = spec.t_edge_s, spec.t_cycle_s
    t, v = [0.0], [0.0]
    for k in np.nonzero(driven)[0]:
        k0 = float(k) * t_cycle
        t += [k0 + spec.t_eval_s, k0 + spec.t_eval_s + e, k0 + spec.t_sl_fall_s, k0 + spec.t_sl_fall_s + e]
        v += [0.0, spec.v_sl_volt, spec.v_sl_volt, 0.0]
    return np.array(t), np.array(v)


def precharge_pwl(spec: TCAMSpec, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The precharge control (1 V closed, 0 V open): closed from each cycle start to t_pre_s, and once
    more at the end (the last search's restoring precharge)."""
    e = precharge_edge_s(spec)
    t, v = [0.0], [1.0]
    for k in range(n_queries):
        k0 = k * spec.t_cycle_s
        t += [k0 + spec.t_pre_s, k0 + spec.t_pre_s + e, k0 + spec.t_cycle_s, k0 + spec.t_cycle_s + e]
        v += [1.0, 0.0, 0.0, 1.0]
    return np.array(t), np.array(v)


def latch_pwl(spec: TCAMSpec, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The latch control (1 V tracks the comparator, 0 V holds): tracks from each cycle start (from 0 in
    the first), holds from t_sense_s (the fall ends exactly there) to the next cycle start."""
    e = spec.t_edge_s
    t, v = [0.0], [1.0]
    for k in range(n_queries):
        k0 = k * spec.t_cycle_s
        if k > 0:
            t += [k0, k0 + e]
            v += [0.0, 1.0]
        t += [k0 + spec.t_sense_s - e, k0 + spec.t_sense_s]
        v += [1.0, 0.0]
    return np.array(t), np.array(v)


def search_line_drives(spec: TCAMSpec, search: TCAMSearch) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    """{source name: PWL or None} of every search-line driver: `sl<b>` (query bit 0), `slb<b>` (query bit 1)."""
    gates = branch_gates(search.queries)  # (n_q, bits, 2)
    out: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for b in range(spec.bits):
        out[f"sl{b}"] = search_line_pwl(spec, gates[:, b, 0])
        out[f"slb{b}"] = search_line_pwl(spec, gates[:, b, 1])
    return out


def cell_node(spec: TCAMSpec, w: int, b: int) -> str:
    """The match-line node cell (w, b) hangs on."""
    return f"m{w}_{b}" if spec.r_wire_ohm > 0 else f"ml{w}"


def access_params(spec: TCAMSpec) -> dict[str, float]:
    """Parameters of one branch's access device (`tcam_access_nmos` / `tcam_access_switch`) and its device caps."""
    caps = spec.caps
    par = {"wl": spec.nmos_w_over_l} if spec.access == "nmos" else {"gon": 1.0 / spec.r_on_ohm, "vsl": spec.v_sl_volt}
    return par | {"cj": caps["junction"], "cov": caps["overlap"]}


def cell_params(spec: TCAMSpec, real: TCAMRealization, w: int, b: int) -> dict[str, float]:
    """Parameters of cell (w, b)'s instance: realized memristors, access device, device caps."""
    return {"r0": 1.0 / float(real.g_siemens[w, b, 0]), "r1": 1.0 / float(real.g_siemens[w, b, 1])} | access_params(spec)


def user_cell_elements(spec: TCAMSpec, real: TCAMRealization, w: int, b: int, node: str) -> tuple[list[str], list[str]]:
    """(element lines, internal nodes) of cell (w, b) on match-line node `node` with the user's part for each
    memristor: per branch the user's part, then tcam.lib's access device (`tcam_access_<access>`), as in the
    built-in cells."""
    el: list[str] = []
    nodes: list[str] = []
    for k, gate in ((0, f"sl{b}"), (1, f"slb{b}")):
        name, x = f"c{w}_{b}_{k}", f"c{w}_{b}_x{k}"
        el += [spec.cell.instance(name, (node, x), float(real.g_siemens[w, b, k])),
               d.instance(f"a{name}", [x, gate], f"tcam_access_{spec.access}", access_params(spec))]
        nodes.append(x)
    return el, nodes


def _elements(spec: TCAMSpec, search: TCAMSearch, real: TCAMRealization) -> list[str]:
    n_q = search.n_queries
    el: list[str] = []
    if spec.access == "nmos":
        el.append(nmos_model_line(spec))
    el.append(d.vsource_dc("pre", "vpre", "0", spec.v_pre_volt))
    el.append(d.vsource_pwl("pc", "pc", "0", *precharge_pwl(spec, n_q)))
    el.append(d.vsource_pwl("trk", "trk", "0", *latch_pwl(spec, n_q)))
    for name, pwl in search_line_drives(spec, search).items():
        el.append(d.vsource_dc(name, name, "0", 0.0) if pwl is None else d.vsource_pwl(name, name, "0", *pwl))
    cell = "tcam_cell_nmos" if spec.access == "nmos" else "tcam_cell_switch"
    c_dev = spec.caps["ml_device"]
    ics: list[str] = []
    v0 = spice_number(spec.v_pre_volt)
    for w in range(spec.words):
        ml = f"ml{w}"
        el.append(d.capacitor(ml, ml, "0", float(real.c_ml_farad[w])))
        if c_dev > 0:
            el.append(d.capacitor(f"dev{w}", ml, "0", c_dev))
        el.append(d.instance(f"p{w}", [ml, "vpre", "pc"], "tcam_precharge", {"rpre": spec.r_pre_ohm}))
        el.append(d.instance(f"s{w}", [ml, "trk", f"q{w}"], "tcam_sense",
                             {"vth": spec.v_sense_volt + float(real.offset_sense_volt[w]), "a": COMPARATOR_GAIN,
                              "rsw": LATCH_R_OHM, "chold": LATCH_C_FARAD}))
        ics += [f"{d.node_voltage(ml)}={v0}", f"{d.node_voltage(f'q{w}')}={spice_number(DECISION_HIGH_VOLT)}"]
        prev = ml
        for b in range(spec.bits):
            node = cell_node(spec, w, b)
            if spec.r_wire_ohm > 0:
                el.append(d.resistor(f"w{w}_{b}", prev, node, spec.r_wire_ohm))
                ics.append(f"{d.node_voltage(node)}={v0}")
                prev = node
            if isinstance(spec.cell, Subcircuit):
                lines, internal = user_cell_elements(spec, real, w, b, node)
                el += lines
                ics += [f"{d.node_voltage(x)}={v0}" for x in internal]
                continue
            el.append(d.instance(f"c{w}_{b}", [node, f"sl{b}", f"slb{b}"], cell, cell_params(spec, real, w, b)))
            inst = ident(f"xc{w}_{b}")
            ics += [f"v({inst}.x0)={v0}", f"v({inst}.x1)={v0}"]
    for k in range(0, len(ics), 8):
        el.append(".ic " + " ".join(ics[k:k + 8]))
    return el


def user_memristors(spec: TCAMSpec) -> tuple[tuple[tuple[int, int, int], str], ...]:
    """((w, b, k), instance name `c<w>_<b>_<k>`) of every user memristor (branch k: 0 on SL, 1 on SLB), word by
    word, bit by bit; () for the built-in cells."""
    if not isinstance(spec.cell, Subcircuit):
        return ()
    return tuple(((w, b, k), f"c{w}_{b}_{k}") for w in range(spec.words) for b in range(spec.bits) for k in (0, 1))


def saves(spec: TCAMSpec) -> tuple[str, ...]:
    """The saved vectors: match lines, latched decisions, the precharge supply and search-line currents, then
    the internal ports of a user cell's memristors."""
    s = [d.node_voltage(f"ml{w}") for w in range(spec.words)] + [d.node_voltage(f"q{w}") for w in range(spec.words)]
    s.append(d.branch_current("pre"))
    for b in range(spec.bits):
        s += [d.branch_current(f"sl{b}"), d.branch_current(f"slb{b}")]
    return tuple(s) + cell_port_saves(cell_internal_ports(spec), user_memristors(spec))


def _title(spec: TCAMSpec, search: TCAMSearch) -> tuple[str, tuple[str, ...]]:
    hsh = spec_digest(spec)
    user = (f"cell user {spec.cell.label} for each memristor",) if isinstance(spec.cell, Subcircuit) else ()
    wires = f" r_wire_ohm {spec.r_wire_ohm!r}" if spec.r_wire_ohm > 0 else ""
    caps = "device caps" if spec.device_caps else "no device caps"
    return (f"pycosim tcam {spec.words}x{spec.bits} {spec.access} access, {search.n_queries} queries "
            f"- generated by pycosim",
            (f"spec sha256 {hsh}",
             f"c_ml_farad {spec.c_ml_farad!r} v_pre_volt {spec.v_pre_volt!r} t_cycle_s {spec.t_cycle_s!r} "
             f"t_sense_s {spec.t_sense_s!r} {caps}{wires}",
             "query k runs from k*t_cycle_s; match lines v(ml0)...; latched decisions v(q0)... (match above 0.5 V)")
            + user)


def tcam_deck_from(spec: TCAMSpec, search: TCAMSearch, real: TCAMRealization) -> Deck:
    """The transient deck of one search (all its queries) with a given realization."""
    check_shapes(spec, search)
    title, comments = _title(spec, search)
    t_stop = run_stop_s(spec, search.n_queries)
    user = (spec.cell.library(),) if isinstance(spec.cell, Subcircuit) else ()
    return Deck(title=title, comments=comments, includes=("tcam.lib",), user_libraries=user,
                elements=tuple(_elements(spec, search, real)), saves=saves(spec),
                analyses=(Analysis(d.tran(spec.max_step_s, t_stop, spec.max_step_s) + " uic"),))


def prepare(spec: TCAMSpec, search: TCAMSearch, nonideal: Nonidealities, seed: int) -> Prepared:
    """The search's transient deck with the realization drawn from `seed` (`context["realization"]`)."""
    real = realize_tcam(spec, search, nonideal, seed)
    return Prepared((tcam_deck_from(spec, search, real),), {"realization": real})


def tcam_deck(spec: TCAMSpec, search: TCAMSearch, nonideal: Nonidealities | None = None, seed: int = 0) -> Deck:
    """The transient deck of one search (validated against the spec)."""
    return prepare(spec, search, Nonidealities() if nonideal is None else nonideal, seed).decks[0]
