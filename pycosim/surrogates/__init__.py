"""Behavior world: torch surrogates of each block (runs no ngspice)."""

from .crossbar import CrossbarModel
from .registry import model_class, surrogate

__all__ = ["CrossbarModel", "model_class", "surrogate"]
