"""The HDF5 run store: one file per sweep, one `/runs/<case_id>` group per finished case."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from . import __version__
from .blocks.registry import block_for
from .errors import StoreError
from .results import SimResult, Waveforms
from .specjson import from_json, to_json

if TYPE_CHECKING:
    from .sweep import Case

LAYOUT_VERSION = 1
LOCK_WAIT_S = 60.0  # how long to wait for another process's lock on the file (HDF5 file locking)
_SCALARS = (bool, int, float, str, np.bool_, np.integer, np.floating)

PathLike = str | os.PathLike


class _UnreadableStore(StoreError):
    """The file exists but is not readable as HDF5 (as opposed to locked or of another layout)."""


def _open(path: PathLike, mode: str) -> h5py.File:
    """Open the store, waiting while another process holds HDF5's file lock; else StoreError."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            f = h5py.File(path, mode)  # default libver: no consistency flag survives a crash
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise StoreError(f"store {os.fspath(path)!r} stayed locked by another process for {LOCK_WAIT_S:g} s; "
                                 "close other programs reading it (h5py, HDFView) and retry") from None
            time.sleep(0.02)
            continue
        except OSError as exc:
            raise _UnreadableStore(f"cannot open store {os.fspath(path)!r} ({exc}); it is not a readable HDF5 file: "
                             "move it aside or choose another store path") from None
        try:
            _check_layout(f, path)
        except BaseException:
            f.close()
            raise
        return f


def _check_layout(f: h5py.File, path: PathLike) -> None:
    if f.mode == "r+" and "layout_version" not in f.attrs and len(f) == 0:
        f.attrs["pycosim_version"] = __version__
        f.attrs["layout_version"] = LAYOUT_VERSION
        return
    version = f.attrs.get("layout_version")
    if version is None:
        raise StoreError(f"{os.fspath(path)!r} is an HDF5 file but not a pycosim store (no 'layout_version'); "
                         "choose another store path")
    if int(version) != LAYOUT_VERSION:
        raise StoreError(f"store {os.fspath(path)!r} has layout_version {int(version)}, this pycosim "
                         f"({__version__}) reads {LAYOUT_VERSION}; use the pycosim that wrote it or a new store path")


def stimulus_fields(stimulus: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split a stimulus dataclass into array fields (datasets) and scalar fields (attrs)."""
    if not dataclasses.is_dataclass(stimulus) or isinstance(stimulus, type):
        raise StoreError(f"a stimulus must be a dataclass instance to be stored, got {type(stimulus).__name__}")
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    for fld in dataclasses.fields(stimulus):
        value = getattr(stimulus, fld.name)
        if value is None:  # an optional input left out: the dataclass default rebuilds it
            continue
        if isinstance(value, np.ndarray) or (isinstance(value, tuple) and all(
                isinstance(v, np.ndarray) for v in value)):
            arrays[fld.name] = value
        elif isinstance(value, _SCALARS):
            scalars[fld.name] = value
        else:
            raise StoreError(f"{type(stimulus).__name__}.{fld.name} is a {type(value).__name__}; the store holds "
                             "only numpy arrays, tuples of arrays, None and bool/int/float/str stimulus fields")
    return arrays, scalars


def _write_arrays(group: h5py.Group, arrays: dict[str, np.ndarray | tuple[np.ndarray, ...]]) -> None:
    for name, arr in arrays.items():
        if isinstance(arr, tuple):  # a tuple of arrays: a group with datasets "0", "1", ...
            sub = group.create_group(name, track_order=True)
            for k, item in enumerate(arr):
                sub.create_dataset(str(k), data=np.asarray(item))
        else:
            group.create_dataset(name, data=np.asarray(arr))


def write_result(path: PathLike, case_id: str, case: Case, result: SimResult) -> None:
    """Write one finished case as `/runs/<case_id>` (replacing any earlier group), status "done" last.

    The file is opened and closed per call, so a process killed between calls leaves a valid
    store; a group whose status is not "done" is discarded by `done_ids`.
    """
    if case_id != case.case_id:
        raise StoreError(f"case_id {case_id!r} is not this case's content hash {case.case_id!r}")
    arrays, scalars = stimulus_fields(case.stimulus)
    if result.waveforms is not None and "time_s" in result.waveforms.signals:
        raise StoreError("a waveform signal may not be named 'time_s' (that is the time axis)")
    marker = _marker(path)
    marker.write_text(f"{case_id} {os.getpid()} {socket.gethostname()}\n")
    try:
        with _open(path, "a") as f:
            _write_group(f, case_id, case, result, arrays, scalars)
    finally:  # reached unless the process dies: then the marker tells `done_ids` to check the file
        marker.unlink(missing_ok=True)


def _write_group(f: h5py.File, case_id: str, case: Case, result: SimResult, arrays: dict[str, np.ndarray],
                 scalars: dict[str, Any]) -> None:
    runs = f["runs"] if "runs" in f else f.create_group("runs", track_order=True)
    if case_id in runs:
        del runs[case_id]
    g = runs.create_group(case_id, track_order=True)
    g.attrs["status"] = "running"
    _write_arrays(g.create_group("outputs", track_order=True), dict(result.outputs))
    inputs = g.create_group("inputs", track_order=True)
    inputs.attrs["stimulus_type"] = type(case.stimulus).__name__
    _write_arrays(inputs, arrays)
    for name, value in scalars.items():
        inputs.attrs[name] = value
    if result.waveforms is not None:
        w = g.create_group("waveforms", track_order=True)
        w.create_dataset("time_s", data=np.asarray(result.waveforms.time_s))
        w["time_s"].attrs["unit"] = "s"
        for name, sig in result.waveforms.signals.items():
            w.create_dataset(name, data=np.asarray(sig))
            w[name].attrs["unit"] = result.waveforms.units.get(name, "")
    g.create_dataset("netlist", data=result.netlist, dtype=h5py.string_dtype("utf-8"))
    g.attrs["spec_json"] = to_json(case.spec)
    g.attrs["nonideal_json"] = to_json(case.nonideal)
    g.attrs["seed"] = np.int64(case.seed)
    g.attrs["block"] = block_for(case.spec).name
    for key, value in result.provenance.items():
        g.attrs[f"prov_{key}"] = str(value)
    g.attrs["status"] = "done"


def _status(group: h5py.Group) -> str:
    s = group.attrs.get("status", "")
    return s.decode() if isinstance(s, bytes) else str(s)


def init_store(path: PathLike) -> None:
    """Create an empty store at `path` if none exists; check the layout of an existing one."""
    with _open(path, "a"):
        pass


def _marker(path: PathLike) -> Path:
    """Sidecar file that exists only while `write_result` has the store open."""
    return Path(os.fspath(path) + ".writing")


def _interrupted_write(path: PathLike) -> str | None:
    """Case id of a write whose process died (its marker is left); StoreError if the writer is alive."""
    marker = _marker(path)
    try:
        case_id, pid, host = (marker.read_text().split() + ["", "", ""])[:3]
    except FileNotFoundError:
        return None
    if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
        raise StoreError(f"store {os.fspath(path)!r} is being written by process {pid}; "
                         "one sweep at a time may write a store: wait for it or use another store path")
    return case_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _salvage(path: PathLike, lost_id: str) -> None:
    """Rebuild the store from its readable finished runs after a writer died mid-write.

    HDF5 has no journal, so a write cut off by SIGKILL can leave the file's metadata
    inconsistent. Every finished run that still reads is copied (in order) to a fresh file
    that replaces the store; the damaged file is kept beside it as `<store>.damaged`.
    """
    path = Path(path)
    fresh = path.with_name(path.name + ".salvage")
    kept = lost = 0
    try:
        src = _open(path, "r")
    except _UnreadableStore:  # killed while creating it: nothing to keep
        src = None
    with h5py.File(fresh, "w") as dst:
        if src is None:
            dst.attrs["pycosim_version"] = __version__
            dst.attrs["layout_version"] = LAYOUT_VERSION
            runs_src: Any = {}
        else:
            runs_src = src.get("runs", {})
            for key, value in src.attrs.items():
                dst.attrs[key] = value
        runs = dst.create_group("runs", track_order=True)
        try:
            for cid in list(runs_src):
                try:
                    g = runs_src[cid]
                    ok = cid != lost_id and _status(g) == "done"
                    if ok:
                        runs_src.copy(g, runs, name=cid)
                except (OSError, KeyError, RuntimeError, ValueError):  # h5py's errors for damaged objects
                    ok = False
                kept, lost = kept + ok, lost + (not ok)
        finally:
            if src is not None:
                src.close()
    os.replace(path, path.with_name(path.name + ".damaged"))
    os.replace(fresh, path)
    _marker(path).unlink(missing_ok=True)
    warnings.warn(f"store {os.fspath(path)!r}: a write was cut off (process killed); kept {kept} finished runs, "
                  f"dropped {lost} to be rerun; the damaged file is {path.name}.damaged (delete it when done)",
                  stacklevel=3)


def done_ids(path: PathLike, *, discard_unfinished: bool = True) -> set[str]:
    """Ids of finished cases. With discard_unfinished (default) runs whose status is not "done"
    are deleted, and a store whose writer was killed mid-write is first rebuilt from its
    readable runs; pass False to only read (e.g. to watch a store another process writes).

    A missing file has no finished cases (and is not created).
    """
    if not Path(path).exists():
        return set()
    if discard_unfinished:
        lost_id = _interrupted_write(path)
        if lost_id is not None:
            _salvage(path, lost_id)
    with _open(path, "r") as f:
        runs = f.get("runs", {})
        done = {cid for cid in runs if _status(runs[cid]) == "done"}
        unfinished = [cid for cid in runs if cid not in done]
    if unfinished and discard_unfinished:
        with _open(path, "a") as f:
            for cid in unfinished:
                if cid in f["runs"] and _status(f["runs"][cid]) != "done":
                    del f["runs"][cid]
    return done


def case_ids(path: PathLike) -> list[str]:
    """Ids of the finished cases in the order they were written (read-only)."""
    if not Path(path).exists():
        raise StoreError(f"store {os.fspath(path)!r} does not exist; run `pycosim.sweep` into it first")
    with _open(path, "r") as f:
        runs = f.get("runs", {})
        return [cid for cid in runs if _status(runs[cid]) == "done"]


def _run_group(f: h5py.File, path: PathLike, case_id: str) -> h5py.Group:
    runs = f.get("runs", {})
    if case_id not in runs:
        raise StoreError(f"case {case_id!r} is not in store {os.fspath(path)!r} ({len(runs)} runs); "
                         "run the sweep that contains it, or list ids with pycosim.case_ids")
    g = runs[case_id]
    if _status(g) != "done":
        raise StoreError(f"case {case_id!r} in {os.fspath(path)!r} is unfinished (status {_status(g)!r}); "
                         "rerun the sweep to redo it")
    return g


def _read(ds: h5py.Dataset) -> np.ndarray:
    return np.asarray(ds[()])


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if isinstance(value, np.generic) else value


def load_result(path: PathLike, case_id: str) -> SimResult:
    """The stored SimResult of one finished case: outputs, waveforms, netlist, provenance."""
    with _open(path, "r") as f:
        g = _run_group(f, path, case_id)
        outputs = {name: _read(ds) for name, ds in g["outputs"].items()}
        waveforms = None
        if "waveforms" in g:
            w = g["waveforms"]
            names = [n for n in w if n != "time_s"]
            waveforms = Waveforms(time_s=_read(w["time_s"]), signals={n: _read(w[n]) for n in names},
                                  units={n: str(_plain(w[n].attrs["unit"])) for n in names})
        provenance = {k[5:]: str(_plain(v)) for k, v in g.attrs.items() if k.startswith("prov_")}
        return SimResult(outputs=outputs, waveforms=waveforms, netlist=g["netlist"].asstr()[()],
                         provenance=provenance)


def load_case(path: PathLike, case_id: str) -> Case:
    """Rebuild the Case of one finished run (spec, stimulus, nonidealities, seed) from the store."""
    from .sweep import Case

    with _open(path, "r") as f:
        g = _run_group(f, path, case_id)
        spec = from_json(str(_plain(g.attrs["spec_json"])))
        nonideal = from_json(str(_plain(g.attrs["nonideal_json"])))
        seed = int(g.attrs["seed"])
        inputs = g["inputs"]
        type_name = str(_plain(inputs.attrs["stimulus_type"]))
        types = {t.__name__: t for t in block_for(spec).stimulus_types}
        if type_name not in types:
            raise StoreError(f"case {case_id!r}: stimulus type {type_name!r} is not one of the "
                             f"{block_for(spec).name} block's ({', '.join(types)})")
        cls = types[type_name]
        kwargs = {}
        for fld in dataclasses.fields(cls):
            if fld.name in inputs and isinstance(inputs[fld.name], h5py.Group):
                sub = inputs[fld.name]
                kwargs[fld.name] = tuple(_read(sub[str(k)]) for k in range(len(sub)))
            elif fld.name in inputs:
                kwargs[fld.name] = _read(inputs[fld.name])
            elif fld.name in inputs.attrs:
                kwargs[fld.name] = _plain(inputs.attrs[fld.name])
        stimulus = cls(**kwargs)
    case = Case(spec=spec, stimulus=stimulus, nonideal=nonideal, seed=seed)
    if case.case_id != case_id:
        raise StoreError(f"case {case_id!r} in {os.fspath(path)!r} rebuilds to a different case "
                         f"({case.case_id}); the store was written by another pycosim version")
    return case
