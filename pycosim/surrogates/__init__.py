"""Behavior world: torch surrogates of each block (runs no ngspice)."""

from .crossbar import CrossbarModel
from .integrator import IntegratorModel
from .registry import model_class, surrogate

__all__ = ["CrossbarModel", "IntegratorModel", "model_class", "surrogate"]
