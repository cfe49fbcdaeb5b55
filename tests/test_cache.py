"""The result cache: computes once per key, recomputes on any input or code change, never trusts a
half-written or corrupt entry, and round-trips calibrations and trained torch modules exactly."""

from __future__ import annotations

import importlib
from dataclasses import replace

import numpy as np
import pytest
import torch

import pycosim as pc
from pycosim.cache import (CacheWarning, ResultCache, canonical_json, load_torch_state, save_torch_state,
                           source_fingerprint)
from pycosim.calibrate import Calibration, calibrate
from pycosim.calibrate_loop import calibrate_loop

from conftest import REALISTIC_OPAMP, random_read

calibrate_module = importlib.import_module("pycosim.calibrate")  # the module (pc.calibrate is the function)
calibrate_loop_module = importlib.import_module("pycosim.calibrate_loop")
VERSIONS = {"pycosim": "test"}  # fixed code versions: these tests do not hash the package's source


class Counted:
    """compute(): a numpy result that depends on the key; counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, key):
        def compute():
            self.calls += 1
            return np.asarray(key["x"], dtype=float) * key["spec"].r_wire_ohm + key["seed"]
        return compute


def save_npy(value: np.ndarray, folder) -> None:
    np.save(folder / "value.npy", value)


def load_npy(folder) -> np.ndarray:
    return np.load(folder / "value.npy")


def _key(**changes):
    key = {"spec": pc.CrossbarSpec(rows=4, cols=4), "seed": 0, "x": np.arange(6.0).reshape(2, 3)}
    return {**key, **changes}


def _get(cache, key, counted):
    return cache.get_or_compute("demo_value", key, counted(key), save=save_npy, load=load_npy)


def test_same_inputs_compute_once_and_give_equal_results(tmp_path):
    cache, counted = ResultCache(tmp_path, versions=VERSIONS), Counted()
    first = _get(cache, _key(), counted)
    second = _get(ResultCache(tmp_path, versions=VERSIONS), _key(), counted)  # a new process: a new cache object
    assert counted.calls == 1
    np.testing.assert_array_equal(second, first)
    entry = cache.path("demo_value", _key())
    assert entry.parent == tmp_path / "cache" and entry.name.startswith("demo_value-") and len(entry.name) == 27
    assert sorted(p.name for p in entry.iterdir()) == ["key.json", "value.npy"]


@pytest.mark.parametrize("changes", [
    {"spec": pc.CrossbarSpec(rows=4, cols=4, r_wire_ohm=1.5)},                   # a spec field
    {"spec": pc.CrossbarSpec(rows=4, cols=4, opamp=pc.OpAmpSpec(a0=2e5))},       # a nested spec field
    {"seed": 1},
    {"x": np.arange(6.0).reshape(2, 3) + np.eye(2, 3) * 1e-12},                   # one array value, by a hair
    {"x": np.arange(6.0).reshape(3, 2)},                                          # the same bytes, another shape
    {"x": np.arange(6.0, dtype=np.float32).reshape(2, 3)},                        # another dtype
], ids=["spec", "nested-spec", "seed", "array-value", "array-shape", "array-dtype"])
def test_any_changed_input_recomputes(tmp_path, changes):
    cache, counted = ResultCache(tmp_path, versions=VERSIONS), Counted()
    _get(cache, _key(), counted)
    key = _key(**changes)
    got = _get(cache, key, counted)
    assert counted.calls == 2
    np.testing.assert_array_equal(got, np.asarray(key["x"], dtype=float) * key["spec"].r_wire_ohm + key["seed"])
    _get(cache, _key(), counted)  # the first entry is still there
    assert counted.calls == 2


def test_a_code_version_change_recomputes(tmp_path):
    counted = Counted()
    _get(ResultCache(tmp_path, versions={"pycosim": "1"}), _key(), counted)
    _get(ResultCache(tmp_path, versions={"pycosim": "2"}), _key(), counted)
    assert counted.calls == 2


def test_source_fingerprint_follows_computing_code_not_presentation(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "fit.py").write_text("A = 1\n")
    (tmp_path / "demo" / "page.py").write_text("TITLE = 'x'\n")
    (tmp_path / "report.py").write_text("W = 1\n")
    before = source_fingerprint(tmp_path)
    (tmp_path / "demo" / "page.py").write_text("TITLE = 'y'\n")
    (tmp_path / "report.py").write_text("W = 2\n")
    assert source_fingerprint(tmp_path) == before
    (tmp_path / "fit.py").write_text("A = 2\n")
    assert source_fingerprint(tmp_path) != before
    assert ResultCache(tmp_path).versions["pycosim_source"] == source_fingerprint()


def test_key_is_canonical_and_rejects_what_it_cannot_hash():
    assert canonical_json({"a": 1, "b": [1.5, float("inf")]}) == canonical_json({"b": (1.5, float("inf")), "a": 1})
    assert canonical_json({"x": np.float64(0.1)}) == canonical_json({"x": 0.1})
    assert canonical_json(torch.ones(3)) != canonical_json(torch.ones(3, dtype=torch.float64))
    with pytest.raises(pc.SpecError, match="cannot hash a object"):
        canonical_json({"f": object()})
    with pytest.raises(pc.SpecError, match="kind"):
        ResultCache("unused", versions=VERSIONS).path("Bad Kind", {})


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing", "key-edited"])
def test_corrupt_entry_is_recomputed_with_a_warning(tmp_path, damage):
    cache, counted = ResultCache(tmp_path, versions=VERSIONS), Counted()
    good = _get(cache, _key(), counted)
    entry = cache.path("demo_value", _key())
    value = entry / "value.npy"
    if damage == "garbage":
        value.write_bytes(b"not a numpy file")
    elif damage == "truncated":
        value.write_bytes(value.read_bytes()[:40])
    elif damage == "missing":
        value.unlink()
    else:
        (entry / "key.json").write_text((entry / "key.json").read_text().replace('"seed":0', '"seed":7'))
    with pytest.warns(CacheWarning, match="unreadable.*recomputing"):
        again = _get(cache, _key(), counted)
    np.testing.assert_array_equal(again, good)
    assert counted.calls == 2
    _get(cache, _key(), counted)  # repaired: read back, no warning, no compute
    assert counted.calls == 2
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [entry.name]  # nothing stale left beside it


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_interrupted_save_leaves_nothing_that_is_trusted(tmp_path, error):
    cache, counted = ResultCache(tmp_path, versions=VERSIONS), Counted()

    def save_then_fail(value, folder):
        save_npy(value, folder)  # a complete-looking file, then the write is cut off
        raise error

    key = _key()
    if isinstance(error, Exception):
        with pytest.warns(CacheWarning, match="not cached"):
            value = cache.get_or_compute("demo_value", key, counted(key), save=save_then_fail, load=load_npy)
        np.testing.assert_array_equal(value, key["x"] * 1.0)  # the computed result is still returned
    else:
        with pytest.raises(KeyboardInterrupt):
            cache.get_or_compute("demo_value", key, counted(key), save=save_then_fail, load=load_npy)
    assert list((tmp_path / "cache").iterdir()) == []
    _get(cache, key, counted)
    assert counted.calls == 2, "the interrupted entry must be recomputed, not read"


def test_a_kill_during_save_leaves_only_a_partial_folder_that_is_ignored(tmp_path):
    """SIGKILL skips every cleanup: simulate the folder it leaves (files, no rename)."""
    cache, counted = ResultCache(tmp_path, versions=VERSIONS), Counted()
    entry = cache.path("demo_value", _key())
    partial = entry.with_name(f".partial-{entry.name}-99999-deadbeef")
    partial.mkdir(parents=True)
    save_npy(np.zeros(1), partial)
    _get(cache, _key(), counted)
    assert counted.calls == 1 and entry.is_dir()


# --- a trained torch module with its loss history, saved and loaded by the caller ---------------

def _train_tiny(seed: int, steps: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x = torch.randn(64, 2)
    y = x[:, :1] * x[:, 1:]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = np.empty(steps)
    for k in range(steps):
        opt.zero_grad()
        err = torch.mean((model(x) - y) ** 2)
        err.backward()
        opt.step()
        loss[k] = err.item()
    return model, loss


def test_trained_torch_module_and_loss_round_trip(tmp_path):
    cache, calls = ResultCache(tmp_path, versions=VERSIONS), []
    key = {"seed": 3, "steps": 25}

    def compute():
        calls.append(1)
        return _train_tiny(**key)

    def save(result, folder):
        model, loss = result
        save_torch_state(folder / "model.pt", model, loss=loss, steps=key["steps"])

    def load(folder):
        model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        extras = load_torch_state(folder / "model.pt", model)
        assert extras["steps"] == key["steps"]
        return model, extras["loss"]

    model, loss = cache.get_or_compute("tiny_model", key, compute, save=save, load=load)
    model2, loss2 = cache.get_or_compute("tiny_model", key, compute, save=save, load=load)
    assert len(calls) == 1
    np.testing.assert_array_equal(loss2, loss)
    assert loss2.dtype == loss.dtype and loss2.shape == (25,)
    x = torch.randn(5, 2)
    with torch.no_grad():
        torch.testing.assert_close(model2(x), model(x), rtol=0, atol=0)
    cache.get_or_compute("tiny_model", {**key, "seed": 4}, compute, save=save, load=load)
    assert len(calls) == 2


def test_torch_state_of_another_architecture_is_recomputed(tmp_path):
    cache = ResultCache(tmp_path, versions=VERSIONS)

    def save(model, folder):
        save_torch_state(folder / "model.pt", model)

    def load_into(out_features):
        def load(folder):
            model = torch.nn.Linear(2, out_features)
            load_torch_state(folder / "model.pt", model)
            return model
        return load

    cache.get_or_compute("tiny_model", {}, lambda: torch.nn.Linear(2, 3), save=save, load=load_into(3))
    with pytest.warns(CacheWarning, match="size mismatch"):  # a loader for a wider model than was saved
        got = cache.get_or_compute("tiny_model", {}, lambda: torch.nn.Linear(2, 5), save=save, load=load_into(5))
    assert got.out_features == 5
    assert cache.get_or_compute("tiny_model", {}, None, save=save, load=load_into(5)).out_features == 5


# --- calibrations: the crossbar fit from a store, and the integrator loop fit ---------------------

@pytest.fixture(scope="module")
def small_runs(tmp_path_factory):
    truth = pc.CrossbarSpec(rows=4, cols=4, r_wire_ohm=2.0, opamp=pc.OpAmpSpec(a0=1e5, offset_volt=1e-3))
    cases = []
    for s in range(6):
        g, v = random_read(4, 4, batch=2, seed=500 + s)
        cases.append(pc.Case(truth, pc.CrossbarRead(g_siemens=g, v_in_volt=v), seed=s))
    return pc.sweep(cases, store=tmp_path_factory.mktemp("cache") / "runs.h5", progress=False)


def _predictions(model, cases):
    with torch.no_grad():
        return [{k: v.numpy() for k, v in model.predict(c).items()} for c in cases]


@pytest.mark.slow  # ~25 s; the cached loop calibration and calibration save/load tests stay in the default suite
def test_cached_calibration_reloads_with_identical_predictions(tmp_path, small_runs, monkeypatch):
    design = pc.CrossbarSpec(rows=4, cols=4, r_wire_ohm=1.0, opamp=pc.OpAmpSpec(a0=1e5, offset_volt=0.0))
    cache = ResultCache(tmp_path)  # the real code versions, as the demo uses them
    fit = calibrate(design, small_runs, holdout=0.25, seed=0, max_iter=30, progress=False, cache=cache)

    def no_fit(*args, **kwargs):
        raise AssertionError("the cached calibration was fitted again")

    with monkeypatch.context() as m:
        m.setattr(calibrate_module, "_fit", no_fit)
        again = calibrate(design, small_runs, holdout=0.25, seed=0, max_iter=30, progress=False, cache=cache)
    assert again.report == fit.report and again.report.to_markdown() == fit.report.to_markdown()
    assert again.report.held_out_error["i_out_amp"]["nrmse"] == fit.report.held_out_error["i_out_amp"]["nrmse"]
    assert [c.case_id for c, _ in again.held_out] == [c.case_id for c, _ in fit.held_out] and len(fit.held_out) == 2
    for (_, r1), (_, r2) in zip(again.held_out, fit.held_out):
        for k in r1.outputs:
            np.testing.assert_array_equal(r2.outputs[k], r1.outputs[k])
        assert r2.netlist == r1.netlist
    assert again.model.spec == fit.model.spec and again.model.circuit_spec == fit.model.circuit_spec
    assert again.model.physical_parameters() == fit.model.physical_parameters()
    cases = [c for c, _ in fit.held_out] + [c for c, _ in calibrate_module.runs_from(small_runs)[:2]]
    for p1, p2 in zip(_predictions(fit.model, cases), _predictions(again.model, cases)):
        for k in p1:
            np.testing.assert_array_equal(p2[k], p1[k])
    with monkeypatch.context() as m:  # another seed or option is another calibration
        calls = []
        m.setattr(calibrate_module, "_fit", lambda *a, **kw: calls.append(1) or fit)
        calibrate(design, small_runs, holdout=0.25, seed=1, max_iter=30, progress=False, cache=cache)
        calibrate(design, small_runs, holdout=0.25, seed=0, max_iter=31, progress=False, cache=cache)
        calibrate(replace(design, r_wire_ohm=1.1), small_runs, holdout=0.25, seed=0, max_iter=30, progress=False,
                  cache=cache)
        calibrate(design, calibrate_module.runs_from(small_runs)[:5], holdout=0.25, seed=0, max_iter=30,
                  progress=False, cache=cache)
    assert len(calls) == 4


def test_calibration_save_and_load_without_a_cache(tmp_path, small_runs):
    design = pc.CrossbarSpec(rows=4, cols=4, r_wire_ohm=1.0)
    fit = calibrate(design, small_runs, fit=["r_wire_ohm"], max_iter=10, progress=False)
    fit.save(tmp_path / "plain.json")
    plain = Calibration.load(tmp_path / "plain.json")
    assert plain.report == fit.report and plain.held_out == () and not (tmp_path / "plain.held_out.h5").exists()
    fit.save(tmp_path / "full.json", held_out=True)
    fit.save(tmp_path / "full.json", held_out=True)  # saving again replaces, never appends
    full = Calibration.load(tmp_path / "full.json")
    assert [c for c, _ in full.held_out] == [c for c, _ in fit.held_out]
    assert pc.case_ids(tmp_path / "full.held_out.h5") == [c.case_id for c, _ in fit.held_out]


def test_cached_loop_calibration_skips_spice_on_rerun(tmp_path, monkeypatch):
    spec = pc.IntegratorSpec(n_states=2, n_hidden=6, activation="relu", opamp=pc.OpAmpSpec(**REALISTIC_OPAMP))
    cache = ResultCache(tmp_path, versions=VERSIONS)
    fit = calibrate_loop(spec, n_cases=2, max_iter=2, progress=False, cache=cache)

    def no_spice(*args, **kwargs):
        raise AssertionError("SPICE ran again for a cached loop calibration")

    monkeypatch.setattr(calibrate_loop_module, "simulate", no_spice)
    again = calibrate_loop(spec, n_cases=2, max_iter=2, progress=False, cache=cache)
    assert again.report == fit.report and "x_volt" in again.report.held_out_error
    assert again.model.physical_parameters() == fit.model.physical_parameters()
    case = fit.held_out[0][0]
    with torch.no_grad():
        np.testing.assert_array_equal(again.model.for_spec(case.spec).outputs(case.stimulus)["x_volt"].numpy(),
                                      fit.model.for_spec(case.spec).outputs(case.stimulus)["x_volt"].numpy())
    with pytest.raises(AssertionError, match="SPICE ran again"):  # another seed is another calibration
        calibrate_loop(spec, n_cases=2, max_iter=2, seed=1, progress=False, cache=cache)
