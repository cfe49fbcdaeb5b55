"""Units read off SI field names: the one suffix table (`r_wire_ohm` → Ohm, `c_fb_farad` → F).

Every field, output and grid name in pycosim carries its unit as a suffix. The CLI's `--help`,
the figures' axis labels and the degradation tables all read the unit here, so a new suffix is
added once. Values stay in SI; only the label changes.
"""

from __future__ import annotations

# suffix -> (unit for terminals and --help (ASCII), unit for figures and reports)
SUFFIXES: tuple[tuple[str, str, str], ...] = (
    ("_ohm", "Ohm", "Ω"),
    ("_farad", "F", "F"),
    ("_volt", "V", "V"),
    ("_amp", "A", "A"),
    ("_siemens", "S", "S"),
    ("_hz", "Hz", "Hz"),
    ("_joule", "J", "J"),
    ("_watt", "W", "W"),
    ("_s", "s", "s"),
    ("_bits", "bits", "bits"),
    ("_tau", "tau", "τ"),
    ("_sigma", "relative", "relative"),
    ("_fraction", "fraction", "fraction"),
)

# whole names whose unit no suffix states
NAMES: dict[str, tuple[str, str]] = {
    "a0": ("V/V", "V/V"),
    "rows": ("count", "count"),
    "cols": ("count", "count"),
    "batch": ("count", "count"),
}
COUNT_PREFIX = "n_"  # n_states, n_hidden, n_points: counts


def _lookup(name: str) -> tuple[str, str] | None:
    last = name.rsplit(".", 1)[-1]  # "opamp.gbw_hz" -> "gbw_hz"
    if last in NAMES:
        return NAMES[last]
    for suffix, unit, label in SUFFIXES:
        if last.endswith(suffix):
            return unit, label
    if last.startswith(COUNT_PREFIX):
        return "count", "count"
    return None


def unit(name: str, default: str = "") -> str:
    """The ASCII unit of a field or output name (`"r_wire_ohm"` → `"Ohm"`), or `default`."""
    found = _lookup(name)
    return default if found is None else found[0]


def display_unit(name: str, default: str = "") -> str:
    """The unit as figures and reports print it (`"r_wire_ohm"` → `"Ω"`), or `default`."""
    found = _lookup(name)
    return default if found is None else found[1]


def axis_label(name: str) -> str:
    """`name (unit)` for an axis or a table column; the bare name where no unit is known."""
    u = display_unit(name)
    return f"{name} ({u})" if u else name
