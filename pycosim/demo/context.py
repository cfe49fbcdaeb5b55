"""What a block's demo section gets: where to write, how to run SPICE, and a provenance list."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DemoContext:
    """out: the demo folder (its `runs.h5` is shared by every section); engine/executor: how SPICE
    runs; progress: show bars; provenance: one line per section for the report's last section;
    cache_dir: where fitted models and trained networks are cached (default: out)."""

    out: Path
    engine: str = "shared"
    executor: Executor | None = None
    progress: bool = True
    provenance: list[str] = field(default_factory=list)
    cache_dir: Path | None = None

    @property
    def cache_folder(self) -> Path:
        return self.out if self.cache_dir is None else Path(self.cache_dir)
