"""The block table: one `Block` record per circuit family, the single table everything loops over.

A block is a handful of files and one record (DESIGN §3a): `pycosim.simulate`, `sweep`,
`calibrate`, `validate`, the CLI, the benches and the demo look a block up here and never
branch on its name. Built-in blocks register when `pycosim.blocks` is imported; a third-party
block registers from its own module, found through the `pycosim.blocks` entry-point group
(or the CLI's `--plugin MODULE`). This module is circuit world: numpy only, no torch.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import SpecError
from ..results import Waveforms
from ..spice import Deck, Plot

ENTRY_POINT_GROUP = "pycosim.blocks"


@dataclass(frozen=True)
class Prepared:
    """Everything a run needs, fixed before ngspice starts: decks plus block-specific context
    (by convention `context["realization"]`: the block's realization, which the surrogate reuses)."""

    decks: tuple[Deck, ...]
    context: Mapping[str, Any]


def _no_benches() -> dict[str, Deck]:
    return {}


def _default_size(spec: Any) -> str:
    return ""


@dataclass(frozen=True)
class Block:
    """One circuit family, with the same face in the circuit and the behaviour world.

    The functions a block writes (all numpy, no torch):
      realize(spec, stimulus, nonideal, seed) -> <Block>Realization: every random draw, from
          child seeds of `seed` (`pycosim.nonideal.child_rngs`); the same object feeds the deck
          and the surrogate (`model.outputs(stimulus, realization=...)`).
      prepare(spec, stimulus, nonideal, seed) -> Prepared: the decks (and the realization in
          `context["realization"]`), built only from checked tokens (`pycosim.spice.deck`).
      observe(spec, stimulus, prepared, plots) -> (outputs {name_unit: array}, Waveforms | None).
      example(spec, seed) -> stimulus: a small seeded stimulus that runs in SPICE in seconds.
      benches() -> {file name: Deck}: the by-hand decks of `netlists/` (a test keeps them in sync).
    The record also names: `surrogate` ("module:Class", imported only when asked for, so the
    circuit world stays torch-free), `honours` (the `Nonidealities` fields the block realizes;
    any other field set is refused), `stochastic` (the honoured fields drawn anew per read,
    compared statistically), `errors` (an `ErrorModel`), `shape_fields` (spec fields that size
    the circuit but do not change the surrogate's physics: runs that differ only in them may be
    calibrated together), `size_label(spec)` and `demo` ("module:function", a report section).
    redraw(spec, stimulus, nonideal, realization, seed) -> realization: the same devices with the
    `stochastic` effects drawn anew from `seed` (for `validate`'s noise statistics), where the seed also
    draws the devices (None: `validate` redraws everything with another seed).
    validation_notes ("module:function", optional; imported only when `validate` runs): notes(cases, *,
    engine) -> tuple of sentences that `validate` adds under its report, saying what the surrogate does not
    model for these held-out cases and what SPICE measured of it (the crossbar: a user cell's state drift
    under read, `pycosim.cell_dynamics`); it may run SPICE and returns () when there is nothing to say.
    """

    name: str
    spec_type: type
    stimulus_types: tuple[type, ...]
    prepare: Callable[[Any, Any, Any, int], Prepared]
    observe: Callable[[Any, Any, Prepared, Sequence[Sequence[Plot]]], tuple[dict[str, np.ndarray], Waveforms | None]]
    realize: Callable[[Any, Any, Any, int], Any]
    example: Callable[[Any, int], Any]
    surrogate: str
    errors: Any
    honours: tuple[str, ...] = ()
    stochastic: tuple[str, ...] = ()
    shape_fields: tuple[str, ...] = ()
    benches: Callable[[], Mapping[str, Deck]] = _no_benches
    size_label: Callable[[Any], str] = _default_size
    demo: str | tuple[str, ...] | None = None
    description: str = ""
    redraw: Callable[[Any, Any, Any, Any, int], Any] | None = None
    validation_notes: str | None = None

    @property
    def module(self) -> str:
        """Where the block is defined (its spec type's module), for `pycosim info`."""
        return self.spec_type.__module__

    def surrogate_class(self) -> type:
        """The surrogate's class (imports the behaviour world: torch)."""
        return _load(self.surrogate, f"block {self.name!r} surrogate")

    def notes_for_validation(self, cases: Sequence[Any], *, engine: Any = "shared") -> tuple[str, ...]:
        """`validation_notes` applied to held-out cases (() when the block names none)."""
        if self.validation_notes is None:
            return ()
        return tuple(_load(self.validation_notes, f"block {self.name!r} validation notes")(cases, engine=engine))

    def demo_refs(self) -> tuple[str, ...]:
        """The block's demo sections as "module:function" references (none, one, or several: systems
        built on the block, e.g. the random-RRAM networks on the crossbar, may add their own)."""
        return () if self.demo is None else (self.demo,) if isinstance(self.demo, str) else tuple(self.demo)

    def demo_sections(self, only: str | None = None) -> list[Callable]:
        """The demo's section functions for this block (`only`: the one whose function is named so)."""
        refs = self.demo_refs()
        if only is not None:
            refs = tuple(r for r in refs if r.partition(":")[2] == only)
            if not refs:
                known = ", ".join(r.partition(":")[2] for r in self.demo_refs()) or "none"
                raise SpecError(f"block {self.name!r} has no demo section {only!r}; it has: {known}")
        return [_load(r, f"block {self.name!r} demo section") for r in refs]

    def check_nonideal(self, nonideal: Any) -> None:
        """Refuse a `Nonidealities` that sets a field this block does not realize."""
        default = type(nonideal)()
        unused = [f.name for f in dataclasses.fields(nonideal)
                  if getattr(nonideal, f.name) != getattr(default, f.name) and f.name not in self.honours]
        if unused:
            honoured = ", ".join(self.honours) or "none"
            raise SpecError(f"the {self.name} block does not realize Nonidealities field(s) {', '.join(unused)}; "
                            f"it honours: {honoured}")


def _load(ref: str, what: str) -> Any:
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"{what} {ref!r} cannot be loaded: {exc}") from None


_BLOCKS: dict[str, Block] = {}
_BY_SPEC: dict[type, Block] = {}
_BY_STIMULUS: dict[type, Block] = {}


def register(block: Block) -> Block:
    """Add (or replace) a block in the table; its name and spec type must be its own."""
    if not isinstance(block, Block):
        raise SpecError(f"register() takes a Block record, got {type(block).__name__}")
    old = _BLOCKS.get(block.name)
    if old is not None and old.spec_type is not block.spec_type and old.spec_type.__qualname__ != block.spec_type.__qualname__:
        raise SpecError(f"block name {block.name!r} is already registered for {old.spec_type.__name__}")
    _BLOCKS[block.name] = block
    _BY_SPEC[block.spec_type] = block
    for t in block.stimulus_types:
        _BY_STIMULUS[t] = block
    return block


_PLUGINS_LOADED = False


def _load_plugins() -> None:
    """Built-in blocks, then every `pycosim.blocks` entry point (once per process)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    importlib.import_module("pycosim.blocks")
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not take the others down
            import warnings

            warnings.warn(f"pycosim block plug-in {ep.name!r} ({ep.value}) failed to load: {exc}", RuntimeWarning,
                          stacklevel=2)


def load_plugin(module: str) -> None:
    """Import a module that registers blocks (the CLI's `--plugin MODULE`)."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise SpecError(f"plug-in module {module!r} cannot be imported: {exc}") from None


def registered_blocks() -> dict[str, Block]:
    """Every registered block by name: {"crossbar": Block, "integrator": Block, ...}."""
    _load_plugins()
    return dict(_BLOCKS)


def block_named(name: str) -> Block:
    blocks = registered_blocks()
    if name not in blocks:
        raise SpecError(f"unknown block {name!r}; registered: {', '.join(sorted(blocks))}")
    return blocks[name]


def block_for(spec: object, stimulus: object | None = None) -> Block:
    """The registered block of `spec`'s type; checks the stimulus type too."""
    _load_plugins()
    block = _BY_SPEC.get(type(spec))
    if block is None:
        known = ", ".join(sorted(b.spec_type.__name__ for b in _BLOCKS.values()))
        raise SpecError(f"{type(spec).__name__} is not a block spec; known: {known}")
    if stimulus is not None and not isinstance(stimulus, block.stimulus_types):
        allowed = " or ".join(t.__name__ for t in block.stimulus_types)
        raise SpecError(f"{block.name} block takes a {allowed} stimulus, got {type(stimulus).__name__}")
    return block
