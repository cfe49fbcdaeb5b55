"""Map ngspice's own output to typed errors (the same rules for both engines)."""

from __future__ import annotations

import re

from ..errors import ConvergenceError, NetlistError, SingularMatrixError, SpiceError

# Lines ngspice prints on stderr that are information, not failure.
_BENIGN = (
    "note: no compatibility mode selected",
    "note: can't find init file",
    "note: starting dynamic gmin stepping",
    "note: starting true gmin stepping",
    "note: starting source stepping",
    "note: transient op started",
    "using sparse",
    "using klu",
    "warning: further gmin increment",
    "trying gmin",
)

_NETLIST = re.compile(
    r"unknown subckt|unknown model|can't find model|could not find|no such|syntax error|"
    r"unknown parameter|undefined|parse error|too few|too many nodes|unknown device|"
    r"simulation interrupted due to error|is not a valid|cannot open|can't open|"
    r"bad syntax|expression err|no circuit loaded|unknown command",
    re.IGNORECASE,
)
_SINGULAR = re.compile(r"singular matrix", re.IGNORECASE)
_CONVERGENCE = re.compile(
    r"timestep too small|gmin stepping failed|source stepping failed|dc solution failed|"
    r"iteration limit reached|convergence problem|transient op failed|no convergence",
    re.IGNORECASE,
)
_FAILED = re.compile(r"simulation\(s\) aborted|^error|\berror:|dc solution failed|run simulation\(s\) aborted",
                     re.IGNORECASE | re.MULTILINE)
_TOO_SMALL = re.compile(r"timestep too small", re.IGNORECASE)
_TIME = re.compile(r"(?:time|at)\s*=\s*([0-9.eE+-]+)")


_SOLVER = re.compile(r"using (klu|sparse)\b[^\n]*direct linear solver", re.IGNORECASE)


def solver_from_log(log: str) -> str:
    """The linear solver an analysis used: "klu" or "sparse" (ngspice < 42 prints nothing: Sparse)."""
    found = {m.lower() for m in _SOLVER.findall(log)}
    if len(found) > 1:
        return "mixed"
    return found.pop() if found else "sparse"


def relevant_lines(log: str) -> str:
    """ngspice's message without the informational chatter (kept: errors and warnings)."""
    keep = []
    for line in log.splitlines():
        low = line.strip().lower()
        if not low or any(low.startswith(b) for b in _BENIGN):
            continue
        keep.append(line.rstrip())
    return "\n".join(keep)


def failure_from_log(log: str, *, netlist_path: str | None = None, what: str = "ngspice run") -> SpiceError | None:
    """The typed error a log shows, or None when it shows no failure."""
    text = relevant_lines(log)
    # ngspice prints recovered trouble too ("Dynamic gmin stepping failed" then "True gmin
    # stepping completed"): only an error line, an aborted analysis or a too-small timestep fails a run
    if not _FAILED.search(text) and not _TOO_SMALL.search(text):
        return None
    return classify(text, netlist_path=netlist_path, what=what)


def classify(log: str, *, netlist_path: str | None = None, what: str = "ngspice run") -> SpiceError:
    """Pick the most specific error class for a failed run's log."""
    text = relevant_lines(log)
    if _NETLIST.search(text):
        cls: type[SpiceError] = NetlistError
        kind, pattern = "rejected the deck", _NETLIST
    elif _SINGULAR.search(text):
        cls, kind, pattern = SingularMatrixError, "singular matrix", _SINGULAR
    elif _CONVERGENCE.search(text):
        cls, kind, pattern = ConvergenceError, "did not converge", _CONVERGENCE
    else:
        cls, kind, pattern = SpiceError, "failed", _FAILED
    first = _first_match(text, (pattern,))
    message = f'{what}: ngspice {kind}: "{first}"'
    t = _TIME.search(first)
    if cls is ConvergenceError and t:
        message += f" at t={t.group(1)} s"
    return cls(message, ngspice_log=text, netlist_path=netlist_path)


def _first_match(text: str, patterns) -> str:
    for line in text.splitlines():
        if any(p.search(line) for p in patterns):
            return line.strip()
    return text.strip().splitlines()[0] if text.strip() else "(no message)"
