"""Two ngspice engines behind one protocol: shared library (default) and `ngspice -b` subprocess.

Both take a `Deck` and return one `Plot` per analysis, with the same vector names, so
results agree to the last bit whichever engine ran them.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol

import numpy as np

from ..errors import SpiceError, SpiceTimeout
from ..resources import circuits_dir
from .deck import Deck
from .log import classify, failure_from_log
from .rawfile import normalize_vector_name, read_raw

DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Plot:
    """Vectors of one analysis (`op`, `tran`, `ac`), keyed `v(node)`, `i(vsrc)`, `time`, `frequency`."""

    kind: str
    vectors: Mapping[str, np.ndarray]


class Engine(Protocol):
    """Runs a deck, one `Plot` per analysis, or raises a `SpiceError` subclass."""

    name: str

    def run(self, deck: Deck, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Plot]: ...

    def version(self) -> str: ...


def _plot_kind(command: str) -> str:
    return command.split()[0].lower()


class SubprocessEngine:
    """`ngspice -b` in a child process: crash isolation and hard timeouts (~10-30 ms slower per run)."""

    name = "subprocess"

    def __init__(self, executable: str = "ngspice", workdir: str | Path | None = None):
        found = shutil.which(executable)
        if found is None:
            raise SpiceError(f"ngspice executable {executable!r} not found on PATH; install Debian's 'ngspice'")
        self.executable = found
        self.workdir = Path(workdir) if workdir else None

    def version(self) -> str:
        out = subprocess.run([self.executable, "-v"], capture_output=True, text=True, timeout=30).stdout
        for line in out.splitlines():
            if "ngspice-" in line:
                return line.strip("* ").split(":")[0].strip()
        return "ngspice (unknown version)"

    def run(self, deck: Deck, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Plot]:
        with tempfile.TemporaryDirectory(prefix="pycosim-", dir=self.workdir) as tmp:
            tmpdir = Path(tmp)
            raws = [tmpdir / f"analysis{k}.raw" for k in range(len(deck.analyses))]
            deck_path = tmpdir / "deck.cir"
            deck_path.write_text(deck.render(circuits_dir(), outputs="raw", raw_paths=raws))
            try:
                proc = subprocess.run([self.executable, "-b", str(deck_path)], capture_output=True,
                                      text=True, timeout=timeout_s, cwd=tmpdir)
            except subprocess.TimeoutExpired as exc:
                log = _text(exc.stdout) + _text(exc.stderr)
                raise SpiceTimeout(f"ngspice ran past its {timeout_s:g} s limit and was killed",
                                   ngspice_log=log[-4000:]) from None
            log = proc.stderr + proc.stdout
            failure = failure_from_log(log)
            if failure is None and proc.returncode != 0:
                failure = classify(log + f"\nngspice exited with status {proc.returncode}")
            if failure is not None:
                raise failure
            plots = []
            for k, (an, raw) in enumerate(zip(deck.analyses, raws)):
                if not raw.exists():
                    raise classify(log + f"\nError: analysis {k} ({an.command.split()[0]}) wrote no results")
                _, vectors = read_raw(raw)
                plots.append(Plot(_plot_kind(an.command), vectors))
            return plots


def _text(x: bytes | str | None) -> str:
    if x is None:
        return ""
    return x.decode(errors="replace") if isinstance(x, bytes) else x


class SharedEngine:
    """ngspice as a shared library through PySpice's `NgSpiceShared` (default; no process start-up).

    One ngspice instance per process (ngspice has global state); a lock serializes runs, so
    parallelism is by process. After each run the circuit and its plots are destroyed, which
    stops the per-run leak PySpice otherwise shows (~0.3 MB a run).
    """

    name = "shared"
    _lock = threading.Lock()
    _ngspice = None
    _pid: int | None = None

    def __init__(self) -> None:
        self._connect()

    @classmethod
    def _connect(cls):
        if cls._ngspice is not None and cls._pid == os.getpid():
            return cls._ngspice
        logging.getLogger("PySpice").setLevel(logging.CRITICAL)  # "Unsupported Ngspice version" is harmless
        from PySpice.Spice.NgSpice.Shared import NgSpiceShared

        if "NGSPICE_LIBRARY_PATH" not in os.environ:
            lib = ctypes.util.find_library("ngspice") or "libngspice.so.0"
            NgSpiceShared.LIBRARY_PATH = lib  # Debian ships libngspice.so.0 only (no unversioned .so)

        class _Captured(NgSpiceShared):
            def __init__(self, *a, **kw):
                self.captured: list[str] = []
                super().__init__(*a, **kw)

            def send_char(self, message, ngspice_id):
                self.captured.append(message.partition(" ")[2])
                return 0

            @staticmethod
            def _background_thread_running(is_running, ngspice_id, user_data):
                return 0  # PySpice's own returns None, which cffi rejects

        try:
            ng = _Captured(ngspice_id=0, send_data=False)
        except OSError as exc:
            raise SpiceError(f"cannot load libngspice ({exc}); install Debian's 'libngspice0'") from None
        cls._ngspice, cls._pid = ng, os.getpid()
        return ng

    def version(self) -> str:
        ng = self._connect()
        return f"ngspice-{ng.ngspice_version}"

    def _command(self, ng, command: str) -> str:
        ng.captured.clear()
        rc = ng._ngspice_shared.ngSpice_Command(command.encode("ascii"))
        out = "\n".join(ng.captured)
        if rc:
            raise classify(out + f"\nError: command {command.split()[0]!r} returned {rc}")
        return out

    def _command_timed(self, ng, command: str, deadline: float) -> str:
        """Run an analysis in ngspice's background thread and halt it at the deadline."""
        ng.captured.clear()
        rc = ng._ngspice_shared.ngSpice_Command(("bg_" + command).encode("ascii"))
        if rc:
            raise classify("\n".join(ng.captured) + f"\nError: command {command.split()[0]!r} returned {rc}")
        time.sleep(0.0005)
        while ng._ngspice_shared.ngSpice_running():
            if time.monotonic() > deadline:
                ng._ngspice_shared.ngSpice_Command(b"bg_halt")
                for _ in range(2000):
                    if not ng._ngspice_shared.ngSpice_running():
                        break
                    time.sleep(0.005)
                raise SpiceTimeout(f"ngspice ran past its time limit and was halted during {command.split()[0]!r}",
                                   ngspice_log="\n".join(ng.captured)[-4000:])
            time.sleep(0.0005)
        return "\n".join(ng.captured)

    def run(self, deck: Deck, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Plot]:
        with self._lock:
            ng = self._connect()
            deadline = time.monotonic() + timeout_s
            try:
                log = self._load(ng, deck)
                for cmd in deck.save_commands():
                    log += self._command(ng, cmd)
                plots = []
                for an in deck.analyses:
                    for alter in an.alters:
                        log += self._command(ng, alter)
                    before = set(ng.plot_names)
                    out = self._command_timed(ng, an.command, deadline)
                    log += out
                    failure = failure_from_log(out)
                    new = [p for p in ng.plot_names if p not in before]
                    if failure is not None:
                        raise failure
                    if not new:
                        raise classify(log + f"\nError: analysis {an.command.split()[0]!r} produced no results")
                    plots.append(Plot(_plot_kind(an.command), self._vectors(ng, new[0])))
                return plots
            finally:
                self._cleanup(ng)

    def _load(self, ng, deck: Deck) -> str:
        from PySpice.Spice.NgSpice.Shared import FFI, ffi

        lines = [ln for ln in (deck.circuit(circuits_dir()) + "\n.end").splitlines() if ln] + [""]
        keep = [ffi.new("char[]", ln.encode("utf8")) for ln in lines] + [FFI.NULL]
        ng.captured.clear()
        rc = ng._ngspice_shared.ngSpice_Circ(ffi.new("char *[]", keep))
        log = "\n".join(ng.captured)
        failure = failure_from_log(log, what="loading the deck")
        if rc or failure is not None:
            raise failure or classify(log + f"\nError: loading the deck returned {rc}")
        return log

    @staticmethod
    def _vectors(ng, plot_name: str) -> dict[str, np.ndarray]:
        from PySpice.Spice.NgSpice.Shared import FFI, ffi, ffi_string_utf8

        lib = ng._ngspice_shared
        names_c = lib.ngSpice_AllVecs(plot_name.encode("utf8"))
        vectors: dict[str, np.ndarray] = {}
        i = 0
        while names_c[i] != FFI.NULL:
            name = ffi_string_utf8(names_c[i])
            i += 1
            info = lib.ngGet_Vec_Info(f"{plot_name}.{name}".encode("utf8"))
            n = info.v_length
            if info.v_compdata == FFI.NULL:
                arr = np.frombuffer(ffi.buffer(info.v_realdata, n * 8), dtype=np.float64).copy()
            else:
                arr = np.frombuffer(ffi.buffer(info.v_compdata, n * 16), dtype=np.complex128).copy()
            vectors[normalize_vector_name(name)] = arr
        return vectors

    def _cleanup(self, ng) -> None:
        for cmd in (b"destroy all", b"remove_circuit", b"reset"):
            ng._ngspice_shared.ngSpice_Command(cmd)
        ng.captured.clear()


def make_engine(name: str = "shared") -> Engine:
    """Engine by name: "shared" (PySpice shared library, default) or "subprocess" (`ngspice -b`)."""
    if name == "shared":
        return SharedEngine()
    if name == "subprocess":
        return SubprocessEngine()
    raise ValueError(f"engine {name!r} is not one of 'shared', 'subprocess'")
