"""Networks that run on any vector field with the integrator contract: neural ODEs, a memristor twin, diffusion.

Contract (DESIGN.md §3): τ·dx/dt = W_out·φ(W_in·x + b_in + W_u·u(t)) + b_out, x in volts.
"""

from .diffusion import (
    ScoreMLP,
    ScoreTraining,
    VPSchedule,
    cached_score_training,
    cached_score_trainings,
    class_clusters_data,
    kl_divergence_2d,
    near_ring_fraction,
    probability_flow_drift,
    reverse_sde_drift,
    ring_data,
    sample_probability_flow,
    sample_reverse_sde,
    train_score_model,
)
from .degradation import DegradationReport, DegradationRow, degradation_grid
from .hp_memristor import (
    DigitalTwin,
    HPMemristorData,
    hp_memristor_data,
    hp_memristor_deck,
    train_digital_twin,
    twin_degradation,
    twin_metric,
)
from .lorenz96 import (
    LORENZ96_LYAPUNOV_TIME,
    Lorenz96Twin,
    lorenz96_degradation,
    lorenz96_metric,
    prediction_windows,
    train_lorenz96_twin,
)
from .neural_ode import (
    LORENZ96_VOLT_PER_UNIT,
    ContractODE,
    Lorenz96Data,
    SampledInputs,
    TrainHistory,
    extrapolation_error,
    fit_vector_field,
    lorenz96_data,
    nrmse,
    simulate_ode,
    train_neural_ode,
)

__all__ = [
    "LORENZ96_LYAPUNOV_TIME", "LORENZ96_VOLT_PER_UNIT", "ContractODE", "DegradationReport", "DegradationRow",
    "DigitalTwin", "HPMemristorData", "Lorenz96Data", "Lorenz96Twin", "SampledInputs", "degradation_grid",
    "fit_vector_field", "lorenz96_degradation", "lorenz96_metric", "prediction_windows", "train_lorenz96_twin",
    "twin_degradation", "twin_metric",
    "ScoreMLP", "ScoreTraining", "TrainHistory", "VPSchedule", "extrapolation_error", "hp_memristor_data",
    "hp_memristor_deck", "cached_score_training", "cached_score_trainings", "class_clusters_data", "kl_divergence_2d", "near_ring_fraction", "lorenz96_data", "nrmse", "probability_flow_drift",
    "reverse_sde_drift", "ring_data", "sample_probability_flow", "sample_reverse_sde", "simulate_ode",
    "train_digital_twin", "train_neural_ode", "train_score_model",
]
