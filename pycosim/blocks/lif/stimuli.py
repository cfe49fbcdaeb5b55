"""Seeded example stimuli of the LIF array, and PWL pulse trains built from spike frames."""

from __future__ import annotations

import numpy as np

from ...errors import SpecError
from ...units import check_array, check_range
from .spec import MAX_V_IN_VOLT, LIFRun, LIFSpec


def spike_frames_pwl(frames, t_frame_s: float, t_pulse_s: float, v_pulse_volt, t_edge_s: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Row voltages for `LIFRun.v_in_pwl` from spike frames: (t_s (4·T + 1,), v_volt (4·T + 1, rows)).

    frames: (T, rows) bool or values in [0, 1]; frame k occupies [k·t_frame_s, (k+1)·t_frame_s) and
    row r carries a pulse of height frames[k, r]·v_pulse_volt (v_pulse_volt: a scalar or (rows,), V)
    that ramps up over t_edge_s from k·t_frame_s, holds, and ramps down over t_edge_s from
    k·t_frame_s + t_pulse_s, so its area is exactly height·t_pulse_s. Rows with 0 stay at 0 V.
    The record ends at T·t_frame_s (0 V), so a run may last up to T·t_frame_s.
    Needs 0 < t_edge_s < t_pulse_s and t_pulse_s + t_edge_s < t_frame_s (strictly increasing times).
    """
    f = np.asarray(frames)
    if f.dtype == bool:
        f = f.astype(np.float64)
    f = check_array("spike_frames_pwl", "frames", f, (None, None), "", 0.0, 1.0)
    n_frames, rows = f.shape
    check_range("spike_frames_pwl", "t_frame_s", t_frame_s, 1e-12, 1.0, "s")
    check_range("spike_frames_pwl", "t_pulse_s", t_pulse_s, 1e-12, t_frame_s, "s")
    check_range("spike_frames_pwl", "t_edge_s", t_edge_s, 1e-15, t_pulse_s, "s")
    if not (t_edge_s < t_pulse_s and t_pulse_s + t_edge_s < t_frame_s):
        raise SpecError(f"spike_frames_pwl: needs t_edge_s < t_pulse_s and t_pulse_s + t_edge_s < t_frame_s, got "
                        f"t_edge_s = {t_edge_s!r}, t_pulse_s = {t_pulse_s!r}, t_frame_s = {t_frame_s!r} s")
    amp = np.broadcast_to(np.asarray(v_pulse_volt, dtype=np.float64), (rows,))
    amp = check_array("spike_frames_pwl", "v_pulse_volt", amp, (rows,), "V", -MAX_V_IN_VOLT, MAX_V_IN_VOLT)
    starts = np.arange(n_frames) * t_frame_s
    t = np.stack([starts, starts + t_edge_s, starts + t_pulse_s, starts + t_pulse_s + t_edge_s], axis=1).ravel()
    high = f * amp[None, :]                                           # (T, rows)
    zero = np.zeros_like(high)
    v = np.stack([zero, high, high, zero], axis=1).reshape(4 * n_frames, rows)
    return np.append(t, n_frames * t_frame_s), np.vstack([v, np.zeros((1, rows))])


def example_run(spec: LIFSpec, seed: int = 0, n_frames: int = 10, t_frame_s: float = 2e-6,
                density: float = 0.3, n_points: int = 201) -> LIFRun:
    """Seeded pulsed example: random spike frames (each row fires in a frame with probability
    `density`) as pulses of half a frame (10 ns edges), cells G ~ U(0.5, 2) µS scaled by
    1 MΩ / R_leak (so the currents stay a few times the rheobase for another R_leak), t_stop =
    n_frames·t_frame_s. In "virtual_ground" each active row adds ~1.25 µA; in "direct" the membrane
    settles at the rows' G-weighted mean voltage, so the pulses are 1.5·v_th/density high (2.5 V by
    default: ~0.75 V on the membrane with the typical 30 % of rows active)."""
    rng = np.random.default_rng(seed)
    frames = rng.random((n_frames, spec.rows)) < density
    g = rng.uniform(0.5e-6, 2e-6, (spec.rows, spec.n_neurons)) * (1e6 / spec.r_leak_ohm)
    v_pulse = 1.0
    if spec.input_mode == "direct":  # the membrane settles at the rows' G-weighted mean voltage
        v_pulse = float(np.clip(1.5 * spec.v_th_volt / density, 1.0, 0.5 * MAX_V_IN_VOLT))
    g = np.round(np.clip(g, 0.0, 1e-2), 12)
    pwl = spike_frames_pwl(frames, t_frame_s, 0.5 * t_frame_s, v_pulse, 10e-9)
    return LIFRun(g_siemens=g, t_stop_s=n_frames * t_frame_s, v_in_pwl=pwl, n_points=n_points)


def example(spec: LIFSpec, seed: int = 0) -> LIFRun:
    """The block's example stimulus: 10 random frames of 2 µs (20 µs, 201 points; runs in SPICE in
    about a second at 16×16)."""
    return example_run(spec, seed)
