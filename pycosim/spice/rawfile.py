"""Reader for ngspice binary (and ASCII) raw files: one plot per file, numpy 2 safe."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SpiceError


def normalize_vector_name(name: str) -> str:
    """One naming for both engines: `v(node)`, `i(vsource)`, `time`, `frequency` (lower case)."""
    n = name.strip().lower()
    if n.endswith("#branch"):
        return f"i({n[:-7]})"
    if n in ("time", "frequency", "v-sweep", "i-sweep", "temp-sweep") or n.startswith(("v(", "i(", "@")):
        return n
    return f"v({n})"


def read_raw(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """Return (plot name, {vector name: array}) of a single-plot raw file."""
    data = Path(path).read_bytes()
    header: dict[str, str] = {}
    names: list[str] = []
    pos = 0
    in_vars = False
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            raise SpiceError(f"raw file {path} ends inside its header")
        line = data[pos:end].decode("ascii", errors="replace")
        pos = end + 1
        if in_vars and line.startswith("\t"):
            names.append(line.split("\t")[2])
            continue
        in_vars = False
        key, _, value = line.partition(":")
        if key in ("Binary", "Values"):
            kind = key
            break
        if key == "Variables":
            in_vars = True
            continue
        header[key.strip()] = value.strip()
    n_vars = int(header["No. Variables"])
    n_points = int(header["No. Points"])
    is_complex = "complex" in header.get("Flags", "")
    if len(names) != n_vars:
        raise SpiceError(f"raw file {path}: {len(names)} variable names for {n_vars} variables")
    if kind == "Binary":
        dtype = np.dtype("<c16") if is_complex else np.dtype("<f8")
        count = n_vars * n_points
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=pos).reshape(n_points, n_vars)
    else:
        arr = _parse_ascii(data[pos:].decode("ascii"), n_vars, n_points, is_complex)
    vectors = {normalize_vector_name(nm): np.array(arr[:, k]) for k, nm in enumerate(names)}
    return header.get("Plotname", ""), vectors


def _parse_ascii(text: str, n_vars: int, n_points: int, is_complex: bool) -> np.ndarray:
    tokens = text.split()
    out = np.empty((n_points, n_vars), dtype=complex if is_complex else float)
    i = 0
    for p in range(n_points):
        i += 1  # point index
        for v in range(n_vars):
            tok = tokens[i]
            i += 1
            if is_complex:
                re_, im_ = tok.split(",")
                out[p, v] = complex(float(re_), float(im_))
            else:
                out[p, v] = float(tok)
    return out
