"""Typed errors: every failure pycosim raises on purpose derives from PycosimError."""

from __future__ import annotations


class PycosimError(Exception):
    """Base of every error pycosim raises on purpose."""


class SpecError(PycosimError, ValueError):
    """A spec, stimulus or option is malformed: names the field, the value and the allowed range."""


_LOG_LINES_SHOWN = 40


def _shortened(log: str) -> str:
    """ngspice's log for a message: the first lines (the error is there) and a count of the rest;
    the full log stays in `SpiceError.ngspice_log` (a failed transient dumps every node's voltage)."""
    lines = log.splitlines()
    if len(lines) <= _LOG_LINES_SHOWN:
        return log
    return "\n".join(lines[:_LOG_LINES_SHOWN] + [f"... ({len(lines) - _LOG_LINES_SHOWN} more lines in .ngspice_log)"])


class SpiceError(PycosimError, RuntimeError):
    """ngspice failed; carries ngspice's own text and the deck that ran."""

    def __init__(self, message: str, *, ngspice_log: str = "", netlist_path: str | None = None):
        self.ngspice_log = ngspice_log
        self.netlist_path = netlist_path
        text = message
        if netlist_path:
            text += f" [deck: {netlist_path}]"
        if ngspice_log:
            text += "\n--- ngspice said ---\n" + _shortened(ngspice_log.strip())
        super().__init__(text)
        self._message = message

    def __reduce__(self):  # keep the log and path across processes (sweeps, the engine host)
        return (_rebuild_spice_error, (type(self), self._message, self.ngspice_log, self.netlist_path))


def _rebuild_spice_error(cls, message, ngspice_log, netlist_path):
    return cls(message, ngspice_log=ngspice_log, netlist_path=netlist_path)


class ConvergenceError(SpiceError):
    """Newton or timestep control failed ('timestep too small', 'gmin stepping failed')."""


class SingularMatrixError(SpiceError):
    """The MNA matrix is singular (floating node, loop of voltage sources)."""


class NetlistError(SpiceError):
    """ngspice rejected the deck (syntax error, unknown model or node)."""


class SpiceTimeout(SpiceError):
    """A run exceeded its wall-clock limit and was killed."""


class StoreError(PycosimError, RuntimeError):
    """The HDF5 store is inconsistent with what was asked of it."""
