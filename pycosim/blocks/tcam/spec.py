"""The TCAM block's spec (the circuit) and search (stored words and queries), checked at once.

The circuit (circuits/tcam.lib, DESIGN §4): `words` match lines × `bits` 2T2R ternary cells.
Each cell has two branches from its match line to ground: a memristor (word side) in series
with an access device (ground side) gated by a search line, SL for branch 0 and SLB for
branch 1. Stored 1 = (LRS, HRS), 0 = (HRS, LRS), X = (HRS, HRS); query 1 drives SLB, 0 drives
SL, X drives neither (masked). A mismatch therefore turns on an LRS branch; a match or a
stored X turns on an HRS branch (leakage); a masked bit turns on nothing.

One search cycle of length `t_cycle_s` (every time below is from the start of the cycle):
the precharge switch (`r_pre_ohm`) holds every match line at `v_pre_volt` until `t_pre_s`;
the query's search lines rise to `v_sl_volt` at `t_eval_s` in `t_edge_s`; the sense amplifier
(comparator at `v_sense_volt` + `sense_offset_volt`) is latched at `t_sense_s`: match =
V_ML(t_sense) above the threshold; the search lines fall half-way between `t_sense_s` and
`t_cycle_s`. Queries run as consecutive cycles in one deck.

Access device: "nmos", a level-1 NMOS (`nmos_kp_a_per_v2`, `nmos_w_over_l`, `nmos_vto_volt`;
no body effect, no channel-length modulation, no model capacitances), or "switch", an ideal
switch with the NMOS's small-V_ds on-resistance `r_on_ohm` = 1/(kp·W/L·(V_SL − V_to)).
Device capacitances (`device_caps`) are explicit linear capacitors, the same for both access
kinds: `c_junction_farad` from each branch's internal node (memristor–access device) to
ground, `c_overlap_farad` from that node to its search line, and `c_ml_device_farad` on each
match line (the precharge device's drain and the sense amplifier's input). With
`device_caps=False` every one of them is exactly zero.

`cell`: None makes every branch's memristor a resistor 1/G; a user's `Subcircuit` (a memristor
compact model; ports: match-line side, access-device side, then internal ports, which get fresh
nodes per branch) replaces each memristor, two per cell, its `conductance_param` receiving the
branch's realized conductance (LRS or HRS, after variation) in S. The access devices, the device
capacitances, precharge and sense stay the built-in ones: the user's part is the resistive element
of a 2T2R cell, not the whole cell. The surrogate treats it as linear, a fitted amplitude times its
programmed conductance (`cell_gain`, pycosim/surrogates/tcam.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import SpecError
from ...specjson import json_type
from ...subcircuit import Subcircuit, check_cell
from ...units import check_choice, check_range

ACCESS_KINDS = ("nmos", "switch")
X = -1                      # the ternary "don't care" in stored words and queries
MAX_QUERIES = 10_000


@json_type
@dataclass(frozen=True, kw_only=True)
class TCAMSpec:
    """A 2T2R ternary CAM of `words` × `bits` (SI; defaults: one LRS mismatch among 32 bits discharges
    a 1 pF match line to V_pre/2 in ≈ 6 ns, a full match stays above it for ≈ 22 ns; the sense
    amplifier decides 7.5 ns after the search edge)."""

    words: int = 16                        # match lines
    bits: int = 32                         # ternary cells per word
    r_lrs_ohm: float = 10e3                # low-resistance state, Ohm
    r_hrs_ohm: float = 1e6                 # high-resistance state, Ohm
    c_ml_farad: float = 1e-12              # match-line capacitance, F
    v_pre_volt: float = 0.8                # precharge voltage, V
    v_sl_volt: float = 1.0                 # search-line high level (the access device's gate), V
    t_pre_s: float = 2e-9                  # precharge ends, s from cycle start
    t_eval_s: float = 2.5e-9               # search-line edges start, s from cycle start
    t_edge_s: float = 10e-12               # search-line (and precharge, latch) edge time, s
    t_sense_s: float = 10e-9               # sense amplifier latches, s from cycle start
    t_cycle_s: float = 14e-9               # one search cycle, s
    v_sense_volt: float = 0.4              # sense threshold, V
    sense_offset_volt: float = 0.0         # sense amplifier input offset (decides at v_sense + offset), V
    access: str = "nmos"                   # "nmos" | "switch"
    nmos_kp_a_per_v2: float = 200e-6       # level-1 transconductance parameter KP, A/V^2
    nmos_w_over_l: float = 10.0            # access transistor W/L
    nmos_vto_volt: float = 0.4             # threshold voltage, V
    device_caps: bool = True               # False: every device capacitance exactly zero
    c_junction_farad: float = 0.2e-15      # internal node (memristor–access) to ground, F
    c_overlap_farad: float = 0.05e-15      # internal node to its search line (gate–drain overlap), F
    c_ml_device_farad: float = 1e-15       # on each match line: precharge drain + sense input, F
    r_pre_ohm: float = 200.0               # precharge switch on-resistance, Ohm
    r_wire_ohm: float = 0.0                # match-line wire resistance per cell segment (sense end at bit 0), Ohm
    c_ml_spread_sigma: float = 0.0         # relative spread of C_ML per match line (seeded)
    max_step_s: float = 0.1e-9             # transient max step, s
    cell: Subcircuit | None = None         # None: resistors; a user's Subcircuit for each memristor (module doc)

    def __post_init__(self) -> None:
        o = "TCAMSpec"
        check_range(o, "words", self.words, 1, 1024, integer=True)
        check_range(o, "bits", self.bits, 1, 1024, integer=True)
        check_range(o, "r_lrs_ohm", self.r_lrs_ohm, 10.0, 1e9, "Ohm")
        check_range(o, "r_hrs_ohm", self.r_hrs_ohm, 10.0, 1e12, "Ohm")
        if not self.r_lrs_ohm < self.r_hrs_ohm:
            raise SpecError(f"TCAMSpec.r_lrs_ohm = {self.r_lrs_ohm!r} must be below r_hrs_ohm = {self.r_hrs_ohm!r} Ohm "
                            f"(a mismatch must conduct more than a match)")
        check_range(o, "c_ml_farad", self.c_ml_farad, 1e-16, 1e-9, "F")
        check_range(o, "v_pre_volt", self.v_pre_volt, 0.05, 5.0, "V")
        check_range(o, "v_sl_volt", self.v_sl_volt, 0.05, 5.0, "V")
        check_range(o, "t_edge_s", self.t_edge_s, 1e-13, 1e-6, "s")
        check_range(o, "t_pre_s", self.t_pre_s, 1e-12, 1e-3, "s")
        check_range(o, "t_eval_s", self.t_eval_s, 1e-12, 1e-3, "s")
        check_range(o, "t_sense_s", self.t_sense_s, 1e-12, 1e-3, "s")
        check_range(o, "t_cycle_s", self.t_cycle_s, 1e-12, 1e-3, "s")
        if not self.t_eval_s >= self.t_pre_s + self.t_edge_s:
            raise SpecError(f"TCAMSpec.t_eval_s = {self.t_eval_s!r} s must be at or after the end of the precharge "
                            f"(t_pre_s + t_edge_s = {self.t_pre_s + self.t_edge_s!r} s)")
        if not self.t_sense_s > self.t_eval_s + self.t_edge_s:
            raise SpecError(f"TCAMSpec.t_sense_s = {self.t_sense_s!r} s must be after the search edge "
                            f"(t_eval_s + t_edge_s = {self.t_eval_s + self.t_edge_s!r} s)")
        if not self.t_cycle_s >= self.t_sense_s + 4 * self.t_edge_s:
            raise SpecError(f"TCAMSpec.t_cycle_s = {self.t_cycle_s!r} s must leave room after t_sense_s "
                            f"(at least t_sense_s + 4·t_edge_s = {self.t_sense_s + 4 * self.t_edge_s!r} s)")
        check_range(o, "v_sense_volt", self.v_sense_volt, 0.0, self.v_pre_volt, "V")
        check_range(o, "sense_offset_volt", self.sense_offset_volt, -0.5, 0.5, "V")
        check_choice(o, "access", self.access, ACCESS_KINDS)
        check_range(o, "nmos_kp_a_per_v2", self.nmos_kp_a_per_v2, 1e-7, 1.0, "A/V^2")
        check_range(o, "nmos_w_over_l", self.nmos_w_over_l, 0.01, 1e4)
        check_range(o, "nmos_vto_volt", self.nmos_vto_volt, 0.0, 2.0, "V")
        if not self.v_sl_volt > self.nmos_vto_volt + 0.05:
            raise SpecError(f"TCAMSpec.v_sl_volt = {self.v_sl_volt!r} V must exceed nmos_vto_volt + 0.05 V = "
                            f"{self.nmos_vto_volt + 0.05!r} V (the access device must turn on)")
        if not isinstance(self.device_caps, (bool, np.bool_)):
            raise SpecError(f"TCAMSpec.device_caps = {self.device_caps!r} must be True or False")
        check_range(o, "c_junction_farad", self.c_junction_farad, 0.0, 1e-12, "F")
        check_range(o, "c_overlap_farad", self.c_overlap_farad, 0.0, 1e-12, "F")
        check_range(o, "c_ml_device_farad", self.c_ml_device_farad, 0.0, 1e-12, "F")
        check_range(o, "r_pre_ohm", self.r_pre_ohm, 1.0, 1e6, "Ohm")
        check_range(o, "r_wire_ohm", self.r_wire_ohm, 0.0, 1e4, "Ohm")
        check_range(o, "c_ml_spread_sigma", self.c_ml_spread_sigma, 0.0, 0.5)
        check_range(o, "max_step_s", self.max_step_s, 1e-14, 1e-6, "s")
        check_cell(f"{o}.cell", self.cell, "match-line side, access-device side")

    @property
    def r_on_ohm(self) -> float:
        """The access device's small-V_ds on-resistance 1/(kp·W/L·(V_SL − V_to)), Ohm (the switch's R_on)."""
        return 1.0 / (self.nmos_kp_a_per_v2 * self.nmos_w_over_l * (self.v_sl_volt - self.nmos_vto_volt))

    @property
    def t_search_s(self) -> float:
        """The middle of the search-line edge, from cycle start: t_half_s counts from here, s."""
        return self.t_eval_s + 0.5 * self.t_edge_s

    @property
    def t_sl_fall_s(self) -> float:
        """When the search lines start to fall, from cycle start, s."""
        return 0.5 * (self.t_sense_s + self.t_cycle_s)

    @property
    def caps(self) -> dict[str, float]:
        """The device capacitances as built: {"junction", "overlap", "ml_device"} in F (zeros without device_caps)."""
        on = bool(self.device_caps)
        return {"junction": self.c_junction_farad if on else 0.0, "overlap": self.c_overlap_farad if on else 0.0,
                "ml_device": self.c_ml_device_farad if on else 0.0}


def ternary(owner: str, field: str, value: object, width: int | None = None) -> np.ndarray:
    """`value` as an int8 (n, width) array in {0, 1, -1 (X)}: a 2-D array, one string "01X…" or a
    sequence of such strings (X, x or - is "don't care"); else SpecError naming the field."""
    where = f"{owner}.{field}"
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        table = {"0": 0, "1": 1, "X": X, "x": X, "-": X}
        bad = sorted({c for v in value for c in v if c not in table})
        if bad:
            raise SpecError(f"{where} holds characters {''.join(bad)!r}; a ternary string uses 0, 1 and X")
        widths = {len(v) for v in value}
        if len(widths) != 1:
            raise SpecError(f"{where}: the strings have different widths {sorted(widths)}")
        value = [[table[c] for c in v] for v in value]
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.ndim != 2 or arr.size == 0:
        raise SpecError(f"{where} must be a non-empty 2-D array of 0, 1 and -1 (X) or ternary strings, "
                        f"got {arr.dtype} of shape {arr.shape}")
    if not np.all(np.isin(arr, (0, 1, X))):
        bad = np.unique(arr[~np.isin(arr, (0, 1, X))])[:5]
        raise SpecError(f"{where} holds values {bad.tolist()} outside {{0, 1, -1 (X)}}")
    if width is not None and arr.shape[1] != width:
        raise SpecError(f"{where} has {arr.shape[1]} bits per row, expected {width}")
    return arr.astype(np.int8)


@dataclass(frozen=True)
class TCAMSearch:
    """One array's stored words (words, bits) and the queries searched in it (n_queries, bits), each
    in {0, 1, -1 (X)} (int arrays or strings like "01X…"); v_ml_volt is reported on `n_points`
    times per cycle."""

    stored: np.ndarray
    queries: np.ndarray
    n_points: int = 201

    def __post_init__(self) -> None:
        o = "TCAMSearch"
        stored = ternary(o, "stored", self.stored)
        queries = ternary(o, "queries", self.queries, width=stored.shape[1])
        if queries.shape[0] > MAX_QUERIES:
            raise SpecError(f"{o}.queries has {queries.shape[0]} rows; at most {MAX_QUERIES} per search")
        check_range(o, "n_points", self.n_points, 2, 100_000, integer=True)
        object.__setattr__(self, "stored", stored)
        object.__setattr__(self, "queries", queries)

    @property
    def words(self) -> int:
        return self.stored.shape[0]

    @property
    def bits(self) -> int:
        return self.stored.shape[1]

    @property
    def n_queries(self) -> int:
        return self.queries.shape[0]

    def mismatches(self) -> np.ndarray:
        """(n_queries, words) Hamming distance ignoring X on either side."""
        q, s = self.queries[:, None, :], self.stored[None, :, :]
        return np.sum((q != X) & (s != X) & (q != s), axis=2).astype(np.int64)


def branch_states(stored: np.ndarray) -> np.ndarray:
    """(words, bits, 2) bool: True where a branch's memristor is in LRS (branch 0 on SL, 1 on SLB)."""
    return np.stack([stored == 1, stored == 0], axis=-1)


def branch_gates(queries: np.ndarray) -> np.ndarray:
    """(n_queries, bits, 2) bool: True where a query turns a branch's access device on
    (query 0 drives SL → branch 0; query 1 drives SLB → branch 1; X neither)."""
    return np.stack([queries == 0, queries == 1], axis=-1)


def check_shapes(spec: TCAMSpec, search: TCAMSearch) -> None:
    """Refuse a search whose stored array is not the spec's words × bits."""
    if search.stored.shape != (spec.words, spec.bits):
        raise SpecError(f"TCAMSearch.stored has shape {search.stored.shape}, but the TCAMSpec needs "
                        f"(words, bits) = ({spec.words}, {spec.bits})")
