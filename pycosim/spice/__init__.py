"""Circuit world: SPICE decks, the two ngspice engines, raw-file reading, typed failures."""

from .deck import Analysis, Deck
from .engines import Engine, InProcessEngine, Plot, SharedEngine, SubprocessEngine, make_engine, ngspice_info

__all__ = ["Analysis", "Deck", "Engine", "InProcessEngine", "Plot", "SharedEngine", "SubprocessEngine", "make_engine", "ngspice_info"]
