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
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol

import numpy as np

from ..errors import SpecError, SpiceError, SpiceTimeout
from ..resources import circuits_dir
from ..threads import one_thread_env
from . import host_protocol
from .deck import Analysis, Deck
from .log import classify, failure_from_log, solver_from_log
from .rawfile import normalize_vector_name, read_raw

DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Plot:
    """Vectors of one analysis (`op`, `tran`, `ac`), keyed `v(node)`, `i(vsrc)`, `time`, `frequency`."""

    kind: str
    vectors: Mapping[str, np.ndarray]
    solver: str = "sparse"  # the linear solver ngspice reported for this analysis: "klu" or "sparse"


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
            solver = solver_from_log(log)
            plots = []
            for k, (an, raw) in enumerate(zip(deck.analyses, raws)):
                if not raw.exists():
                    raise classify(log + f"\nError: analysis {k} ({an.command.split()[0]}) wrote no results")
                _, vectors = read_raw(raw)
                plots.append(Plot(_plot_kind(an.command), vectors, solver))
            return plots


def _text(x: bytes | str | None) -> str:
    if x is None:
        return ""
    return x.decode(errors="replace") if isinstance(x, bytes) else x


class InProcessEngine:
    """libngspice in this process through PySpice's `NgSpiceShared` (used inside the engine host).

    One ngspice instance per process (ngspice has global state); a lock serializes runs, so
    parallelism is by process. After each run the circuit and its plots are destroyed, but
    ngspice-39 still leaks ~1 kB per element line per load (measured), so long-lived callers
    use `SharedEngine`, which hosts this in a child process and recycles it. No timeout: a
    hung analysis blocks (the host's parent enforces timeouts by killing the host).
    """

    name = "inprocess"
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

    def run(self, deck: Deck, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Plot]:
        with self._lock:
            ng = self._connect()
            try:
                log = self._load(ng, deck)
                for cmd in deck.save_commands():
                    log += self._command(ng, cmd)
                plots = []
                for an in deck.analyses:
                    for alter in an.alters:
                        log += self._command(ng, alter)
                    before = set(ng.plot_names)
                    out = self._command(ng, an.command)
                    log += out
                    failure = failure_from_log(out)
                    new = [p for p in ng.plot_names if p not in before]
                    if failure is not None:
                        raise failure
                    if not new:
                        raise classify(log + f"\nError: analysis {an.command.split()[0]!r} produced no results")
                    plots.append(Plot(_plot_kind(an.command), self._vectors(ng, new[0]), solver_from_log(out)))
                    # read, then drop it: ngspice's time per analysis grows with the plots it holds (a 3x64 encoder,
                    # 400 `.op`s of one deck: 7.0 s keeping them, 1.2 s dropping each once read)
                    ng._ngspice_shared.ngSpice_Command(f"destroy {new[0]}".encode("ascii"))
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


class SharedEngine:
    """Default engine: libngspice (PySpice `NgSpiceShared`) in a long-lived host process.

    Hosting keeps ngspice's start-up cost off every run (unlike `ngspice -b`) while giving
    what an in-process library cannot: hard timeouts (the host is killed), crash isolation,
    and a bounded leak (ngspice-39 leaks ~1 kB per element line per circuit load even after
    `remove_circuit`; the host is restarted once its RSS passes `recycle_mb`).
    """

    name = "shared"

    def __init__(self, recycle_mb: float = 1024.0):
        self.recycle_mb = recycle_mb
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._version: str | None = None
        self.restarts = 0

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen([sys.executable, "-m", "pycosim.spice.host"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=one_thread_env())
            self.restarts += 1
        return self._proc

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for f in (self._proc.stdin, self._proc.stdout):
                if f:
                    f.close()
            self._proc = None

    def close(self) -> None:
        """Stop the host process (a later run starts a new one)."""
        with self._lock:
            self._kill()

    def __del__(self) -> None:
        try:
            self._kill()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _call(self, request: tuple, timeout_s: float):
        proc = self._start()
        try:
            host_protocol.send(proc.stdin, request)
            status, payload, rss_mb = host_protocol.receive(proc.stdout, timeout_s)
        except TimeoutError:
            self._kill()
            raise SpiceTimeout(f"ngspice ran past its {timeout_s:g} s limit; its host process was killed") from None
        except (EOFError, BrokenPipeError, OSError) as exc:
            code = proc.poll()
            self._kill()
            raise SpiceError(f"the ngspice host process died (exit status {code}): {exc}") from None
        if rss_mb > self.recycle_mb:
            self._kill()
        if status == "error":
            raise payload
        return payload

    def version(self) -> str:
        with self._lock:
            if self._version is None:
                self._version = self._call(("version",), 120.0)
            return self._version

    def run(self, deck: Deck, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Plot]:
        with self._lock:
            return self._call(("run", deck), timeout_s)


_DEFAULT_SHARED: dict[int, SharedEngine] = {}


def make_engine(name: str = "shared") -> Engine:
    """Engine by name: "shared" (default; this process's one hosted libngspice), "subprocess"
    (`ngspice -b` per run) or "inprocess" (libngspice in this process; leaks, no timeout)."""
    if name == "shared":
        return _DEFAULT_SHARED.setdefault(os.getpid(), SharedEngine())
    if name == "subprocess":
        return SubprocessEngine()
    if name == "inprocess":
        return InProcessEngine()
    raise SpecError(f"engine {name!r} is not one of 'shared', 'subprocess', 'inprocess'")


def ngspice_info(engine: Engine | str = "shared") -> dict[str, str]:
    """The ngspice an engine runs and the linear solver it uses for pycosim's decks.

    Runs a two-element probe deck (which asks for KLU, as every pycosim deck does) and reads
    the solver ngspice reports: "klu" on ngspice >= 42 built with KLU, "sparse" otherwise.
    """
    from . import deck as d

    eng = make_engine(engine) if isinstance(engine, str) else engine
    probe = Deck(title="pycosim solver probe", elements=(d.vsource_dc("1", "a", "0", 1.0), d.resistor("1", "a", "0", 1e3)),
                 saves=(d.node_voltage("a"),), analyses=(Analysis(d.op()),))
    plots = eng.run(probe, timeout_s=60.0)
    return {"ngspice_version": eng.version(), "solver": plots[0].solver, "engine": eng.name}
