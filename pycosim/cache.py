"""`ResultCache`: reuse expensive results (fits, trained models) keyed by a hash of their inputs.

An entry is the folder `<folder>/cache/<kind>-<hash16>/`: the caller's `save` writes its files
there and `load` reads them back; `key.json` beside them holds the canonical JSON the hash was
taken of (checked on load, so a hash-prefix collision or a hand-edited entry is not trusted).
The key covers everything that determines the result (specs, case ids, arrays by their bytes,
hyper-parameters, seeds) and the code (`code_versions`), so a code change is a new entry.
Entries appear by renaming a finished temporary folder: a run cut off while saving leaves
only a `.partial-*` folder that is never read; an unreadable entry is recomputed with a
`CacheWarning`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import shutil
import sys
import uuid
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import numpy as np

from . import __version__
from .errors import SpecError

T = TypeVar("T")

KEY_FILE = "key.json"
_KIND = re.compile(r"[a-z][a-z0-9_]*\Z")
# formatting and driving code: it shows cached results but never computes them, so editing it
# (the usual loop when polishing a report) keeps the cache
_PRESENTATION = ("cli", "demo", "plots.py", "report.py")


class CacheWarning(UserWarning):
    """A cache entry could not be read (it is recomputed) or written (the result is used uncached)."""


def _encode(obj: Any) -> Any:
    """JSON-able canonical form: arrays become dtype, shape and sha256 of their bytes."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(obj, np.bool_):
        return bool(obj)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        return {"tensor": str(t.dtype), "shape": list(t.shape), "sha256": hashlib.sha256(raw).hexdigest()}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise SpecError("cache key: an object array has no stable bytes; pass numeric arrays or their contents")
        arr = np.ascontiguousarray(obj)
        return {"ndarray": arr.dtype.str, "shape": list(arr.shape), "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}
    sweep = sys.modules.get("pycosim.sweep")
    if sweep is not None and isinstance(obj, sweep.Case):  # its id hashes decks, seed and inputs
        return {"case_id": obj.case_id}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"type": f"{type(obj).__module__}.{type(obj).__qualname__}"}
        out.update({f.name: _encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
        return out
    if isinstance(obj, Mapping):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise SpecError(f"cache key: mapping keys must be str, got {bad[0]!r}")
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(x) for x in obj]
    raise SpecError(f"cache key: cannot hash a {type(obj).__name__} by content; pass the specs, arrays, "
                    "numbers or strings that determine it")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON of `obj` (sorted keys; arrays and tensors by dtype, shape and byte hash;
    dataclasses with their qualified type name; a `Case` by its `case_id`)."""
    return json.dumps(_encode(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def content_hash(obj: Any) -> str:
    """sha256 hex digest of `canonical_json(obj)`."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def source_fingerprint(package_dir: str | os.PathLike | None = None) -> str:
    """sha256 (16 hex) of the package's source files, without the presentation-only modules
    (cli, demo, plots, report): changes when code that computes a result changes."""
    root = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts or path.suffix == ".pyc" or rel.parts[0] in _PRESENTATION:
            continue
        h.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def code_versions() -> dict[str, str]:
    """What a cached result also depends on: pycosim (version and source), torch, numpy, Python."""
    return {"pycosim": __version__, "pycosim_source": source_fingerprint(), "torch": _version("torch"),
            "numpy": np.__version__, "python": platform.python_version()}


@dataclass(frozen=True)
class ResultCache:
    """Results kept under `folder/cache`, one entry per (kind, key, versions).

    versions: the code a result depends on (default `code_versions()`, taken once here);
    any change makes new entries. Old entries are not deleted: remove the folder to reclaim it.
    """

    folder: Path
    versions: Mapping[str, str] = field(default_factory=code_versions)

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))
        object.__setattr__(self, "versions", dict(self.versions))

    @property
    def directory(self) -> Path:
        """Where the entries live: `folder / "cache"`."""
        return self.folder / "cache"

    def key_text(self, kind: str, key: Any) -> str:
        """The canonical JSON that names an entry (kind, key, versions)."""
        if not isinstance(kind, str) or not _KIND.match(kind):
            raise SpecError(f"cache kind {kind!r} must match [a-z][a-z0-9_]* (it is part of a file name)")
        return canonical_json({"kind": kind, "key": key, "versions": self.versions})

    def path(self, kind: str, key: Any) -> Path:
        """The entry folder `<folder>/cache/<kind>-<first 16 hex of the key's sha256>`."""
        return self._entry(kind, self.key_text(kind, key))

    def _entry(self, kind: str, text: str) -> Path:
        return self.directory / f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"

    def get_or_compute(self, kind: str, key: Any, compute: Callable[[], T], *,
                       save: Callable[[T, Path], None], load: Callable[[Path], T]) -> T:
        """The stored result for (kind, key) if readable, else `compute()` (then saved).

        save(value, folder) writes the value's files into an empty folder; load(folder)
        rebuilds the value from them. A failing load (corrupt or stale entry) warns and
        recomputes; a failing save warns and returns the computed value, uncached.
        """
        text = self.key_text(kind, key)
        entry = self._entry(kind, text)
        if entry.is_dir():
            try:
                stored = (entry / KEY_FILE).read_text()
                if stored != text:
                    raise SpecError(f"{KEY_FILE} does not match this key (hash-prefix collision or edited entry)")
                return load(entry)
            except Exception as exc:  # any failure to read back means: do not trust it, recompute
                warnings.warn(f"cache entry {entry} is unreadable ({type(exc).__name__}: {exc}); recomputing it",
                              CacheWarning, stacklevel=2)
        value = compute()
        self._write(entry, text, value, save)
        return value

    def _write(self, entry: Path, text: str, value: Any, save: Callable[[Any, Path], None]) -> None:
        """Save into a `.partial-*` folder, then rename it to `entry` (atomic: all or nothing)."""
        tag = f"{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        partial = entry.with_name(f".partial-{tag}")
        try:
            partial.mkdir(parents=True)
            save(value, partial)
            (partial / KEY_FILE).write_text(text)  # last: a folder with a key file was saved in full
            if entry.exists():  # the stale or corrupt entry we just recomputed
                stale = entry.with_name(f".stale-{tag}")
                os.rename(entry, stale)
                shutil.rmtree(stale, ignore_errors=True)
            try:
                os.rename(partial, entry)
            except OSError:
                if not entry.is_dir():
                    raise  # else another process saved the same entry first: keep theirs
        except Exception as exc:
            warnings.warn(f"could not write cache entry {entry} ({type(exc).__name__}: {exc}); "
                          "the result is used but not cached", CacheWarning, stacklevel=3)
        finally:
            shutil.rmtree(partial, ignore_errors=True)


def save_torch_state(path: str | os.PathLike, module: Any, **extras: Any) -> None:
    """Write `module.state_dict()` and `extras` (numpy arrays, numbers, strings) to `path`, in a
    form `load_torch_state` reads with `torch.load(weights_only=True)` (no pickled code)."""
    import torch

    arrays = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in extras.items() if isinstance(v, np.ndarray)}
    values = {k: v for k, v in extras.items() if k not in arrays}
    bad = [k for k, v in values.items() if not isinstance(v, (bool, int, float, str, type(None)))]
    if bad:
        raise SpecError(f"save_torch_state: extra {bad[0]!r} is a {type(values[bad[0]]).__name__}; "
                        "pass numpy arrays, numbers or strings")
    torch.save({"state_dict": module.state_dict(), "arrays": arrays, "values": values}, path)


def load_torch_state(path: str | os.PathLike, module: Any) -> dict[str, Any]:
    """Load `save_torch_state`'s file into `module` (same architecture, strict); return the extras
    (arrays as numpy)."""
    import torch

    data = torch.load(path, weights_only=True)
    module.load_state_dict(data["state_dict"])
    return {**{k: v.numpy() for k, v in data["arrays"].items()}, **data["values"]}
