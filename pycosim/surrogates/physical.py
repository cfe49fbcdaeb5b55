"""What every block surrogate shares: parameters named by the physical quantity they refine.

`BlockSurrogate` is the protocol the bridge (`calibrate`, `validate`) calls and nothing else;
`PhysicalModel` implements the generic part of it once: parameters stored as the log of their
SI value (or on a linear scale), set and read by physical name, a generic `for_spec` that keeps
fitted values where the new spec leaves the circuit they describe unchanged, and the fit loss
and errors of the block's error model.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import nn

from ..errors import SpecError


@dataclass(frozen=True)
class Param:
    """One physical parameter of a surrogate.

    name: physical name (a dotted spec path such as "opamp.a0" where the spec has the field);
    depends_on: the dotted spec paths whose values it describes: a model moved to another spec
    (`for_spec`) keeps its fitted value only where all of them are unchanged (empty: a property
    of the circuit family, always kept); scale: None stores log(value), a number stores value·scale.
    """

    name: str
    depends_on: tuple[str, ...] = ()
    scale: float | None = None


def spec_value(spec: Any, path: str) -> Any:
    """The value at a dotted spec path (`"opamp.gbw_hz"`), properties included."""
    return functools.reduce(getattr, path.split("."), spec)


@runtime_checkable
class BlockSurrogate(Protocol):
    """The surrogate face the bridge relies on (every block's model satisfies it).

    outputs(stimulus, nonideal, seed, realization=None) -> {key: tensor}: same keys and shapes as
    `pc.simulate(...).outputs`; predict(case): outputs of a stored `Case`.
    """

    spec: Any
    circuit_spec: Any

    def outputs(self, stimulus: Any, nonideal: Any = None, seed: int = 0, *,
                realization: Any = None) -> dict[str, torch.Tensor]: ...

    def predict(self, case: Any) -> dict[str, torch.Tensor]: ...

    def physical_parameters(self) -> dict[str, float]: ...

    def nominal_parameters(self) -> dict[str, float]: ...

    def fitted_names(self) -> list[str]: ...

    def set_physical_parameters(self, values: Mapping[str, float]) -> None: ...

    def for_spec(self, spec: Any) -> "BlockSurrogate": ...

    def fit_loss(self, preds: Sequence[Mapping[str, torch.Tensor]],
                 refs: Sequence[Mapping[str, np.ndarray]]) -> torch.Tensor: ...

    def errors(self, preds: Sequence[Mapping[str, Any]], refs: Sequence[Mapping[str, np.ndarray]]
               ) -> dict[str, dict[str, float]]: ...


class PhysicalModel(nn.Module):
    """Base of the surrogates. A subclass lists its parameters in `PARAMETERS` (attribute name →
    `Param`) and implements `outputs`; `fit_outputs` (or the block's error model) say what the fit
    compares. Construction keywords other than the spec are kept in `init_kwargs` so that
    `for_spec` builds the same kind of model (solver tolerances, device, dtype)."""

    PARAMETERS: ClassVar[Mapping[str, Param]] = {}

    def __init__(self, spec: Any, **init_kwargs: Any) -> None:
        super().__init__()
        self.spec = spec
        self.circuit_spec = spec   # the circuit the parameter values describe (see `describes`)
        self.init_kwargs = dict(init_kwargs)

    # ---- the block record -----------------------------------------------------------------
    @property
    def block(self):
        from ..blocks.registry import block_for

        return block_for(self.spec)

    @property
    def fit_outputs(self) -> tuple[str, ...]:
        return tuple(self.block.errors.fit_outputs)

    # ---- physical parameters by name ------------------------------------------------------
    def _param_of(self, physical: str) -> tuple[str, Param]:
        for attr, p in self.PARAMETERS.items():
            if p.name == physical:
                return attr, p
        known = ", ".join(p.name for p in self.PARAMETERS.values())
        raise SpecError(f"{type(self).__name__} has no physical parameter {physical!r}; known: {known}")

    def _value(self, attr: str) -> float:
        p, raw = self.PARAMETERS[attr], getattr(self, attr).detach()
        return float(raw) / p.scale if p.scale is not None else float(raw.exp())

    def physical_parameters(self) -> dict[str, float]:
        """Every physical parameter in SI, by physical name."""
        return {p.name: self._value(attr) for attr, p in self.PARAMETERS.items()}

    def nominal_parameters(self) -> dict[str, float]:
        """The same parameters as an uncalibrated model of this spec has them."""
        return type(self)(self.spec, **self.init_kwargs).physical_parameters()

    def fitted_names(self) -> list[str]:
        """Physical parameters that calibration may adjust for this spec."""
        return [p.name for attr, p in self.PARAMETERS.items() if getattr(self, attr).requires_grad]

    def set_physical_parameters(self, values: Mapping[str, float]) -> None:
        """Set parameters by physical name and SI value (e.g. {"r_wire_ohm": 1.0})."""
        with torch.no_grad():
            for name, value in values.items():
                attr, p = self._param_of(name)
                if p.scale is None and not value > 0:
                    raise SpecError(f"{type(self).__name__}.{name} = {value!r} must be > 0")
                raw = value * p.scale if p.scale is not None else math.log(value)
                getattr(self, attr).copy_(torch.tensor(raw, dtype=torch.float64))

    def parameter_tensors(self, names: Sequence[str]) -> list[torch.Tensor]:
        """The tensors of the named physical parameters (what an optimizer updates)."""
        return [getattr(self, self._param_of(n)[0]) for n in names]

    def fit_only(self, names: Sequence[str]) -> None:
        """Let gradients reach exactly the named parameters (the others are frozen)."""
        unknown = set(names) - set(self.fitted_names())
        if unknown:
            raise SpecError(f"cannot fit {sorted(unknown)} for this spec; fittable: {self.fitted_names()}")
        for attr, p in self.PARAMETERS.items():
            getattr(self, attr).requires_grad_(p.name in names)

    def describes(self, circuit_spec: Any) -> "PhysicalModel":
        """Record the circuit the current parameter values were fitted to (calibration does)."""
        self.circuit_spec = circuit_spec
        return self

    def for_spec(self, spec: Any) -> "PhysicalModel":
        """A model of circuit `spec` that keeps this model's fitted values where every spec path a
        parameter depends on is the same in `spec` and in the circuit it was fitted to, and takes
        `spec`'s own values where one differs."""
        new = type(self)(spec, **self.init_kwargs)
        with torch.no_grad():
            for attr, p in self.PARAMETERS.items():
                mine, theirs = getattr(self, attr), getattr(new, attr)
                same = all(spec_value(spec, d) == spec_value(self.circuit_spec, d) for d in p.depends_on)
                if same and mine.requires_grad and theirs.requires_grad:
                    theirs.copy_(mine)
        return new.describes(spec)

    # ---- the block's error model ----------------------------------------------------------
    def fit_loss(self, preds: Sequence[Mapping[str, torch.Tensor]],
                 refs: Sequence[Mapping[str, np.ndarray]]) -> torch.Tensor:
        """Mean over cases of the squared error of each fit output, normalized by the output's
        largest |reference| over all cases (aligned outputs; blocks with events or decisions
        override this with a differentiable loss on their continuous quantity)."""
        loss = torch.zeros((), dtype=torch.float64)
        for k in self.fit_outputs:
            scale = max(max(float(np.max(np.abs(r[k]))) for r in refs), 1e-300)
            for p, r in zip(preds, refs):
                ref = torch.as_tensor(np.asarray(r[k]), dtype=torch.float64, device=p[k].device)
                loss = loss + torch.mean(((p[k].to(torch.float64) - ref) / scale) ** 2) / len(refs)
        return loss

    def errors(self, preds: Sequence[Mapping[str, Any]], refs: Sequence[Mapping[str, np.ndarray]]
               ) -> dict[str, dict[str, float]]:
        """The block's error model applied to surrogate predictions (tensors or arrays) vs SPICE."""
        return self.block.errors.errors([to_numpy(p) for p in preds], refs)


def to_numpy(outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Outputs as numpy arrays (detached from autograd, on the CPU)."""
    return {k: v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v) for k, v in outputs.items()}
