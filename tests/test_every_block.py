"""What every registered block gets for free, parametrized over the Block table.

Default spec builds; every spec field out of its range is refused with a SpecError naming the
field, the value and the range (hypothesis, 200+ specs per block); the example stimulus runs in
SPICE; the surrogate answers with the same output keys and shapes; the benches in `netlists/`
equal the renderer's output; a Nonidealities field the block does not realize is refused.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pycosim as pc
import rc_block  # noqa: F401  (a plug-in block registered from tests/: it gets the same checks)
from pycosim.benches import LIB_DIR_FROM_NETLISTS
from pycosim.blocks.registry import registered_blocks
from pycosim.predict import predict
from pycosim.resources import netlists_dir
from pycosim.specjson import from_json, to_json
from pycosim.units import field_ranges

BLOCKS = registered_blocks()
NAMES = sorted(BLOCKS)


def _with(spec, path: str, value):
    head, _, tail = path.partition(".")
    if tail:
        return dataclasses.replace(spec, **{head: _with(getattr(spec, head), tail, value)})
    return dataclasses.replace(spec, **{head: value})


def _bad_values(r) -> st.SearchStrategy:
    """Values outside [lo, hi]: below, above, NaN, wrong type; non-integers for integer fields."""
    options = [st.just(math.nan), st.just("1"), st.just(True)]
    if r.lo > -math.inf:
        options.append(st.floats(max_value=r.lo, exclude_max=True, allow_nan=False, allow_infinity=True, width=64)
                       .filter(lambda v: v < r.lo))
    if r.hi < math.inf:
        options.append(st.floats(min_value=r.hi, exclude_min=True, allow_nan=False, allow_infinity=True, width=64)
                       .filter(lambda v: v > r.hi))
    if r.integer:
        options.append(st.floats(min_value=max(r.lo, -1e6), max_value=min(r.hi, 1e6)).filter(lambda v: v != int(v)))
    return st.one_of(options)


def _field_and_bad_value(spec_type) -> st.SearchStrategy:
    ranges = field_ranges(spec_type)
    return st.sampled_from(sorted(ranges)).flatmap(lambda f: st.tuples(st.just(f), _bad_values(ranges[f])))


@pytest.mark.parametrize("name", NAMES)
def test_default_spec_builds_and_has_ranges(name):
    block = BLOCKS[name]
    spec = block.spec_type()
    assert field_ranges(block.spec_type), f"{name}: no field of its spec is range-checked"
    assert from_json(to_json(spec)) == spec, f"{name}: the spec does not survive the store's JSON"
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(spec, dataclasses.fields(spec)[0].name, None)


@pytest.mark.parametrize("name", NAMES)
def test_every_field_out_of_range_is_refused_naming_field_value_and_range(name):
    block = BLOCKS[name]
    default = block.spec_type()
    ranges = field_ranges(block.spec_type)

    @settings(max_examples=220, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_field_and_bad_value(block.spec_type))
    def check(case):
        path, value = case
        with pytest.raises(pc.SpecError) as err:
            _with(default, path, value)
        msg = str(err.value)
        leaf = path.split(".")[-1]
        r = ranges[path]
        assert f".{leaf} = {value!r}" in msg, msg
        assert f"[{r.lo:g}, {r.hi:g}]" in msg, msg

    check()


@pytest.mark.parametrize("name", NAMES)
def test_choice_and_flag_fields_refuse_nonsense_naming_the_field(name):
    spec = BLOCKS[name].spec_type()
    ranged = {p.split(".")[0] for p in field_ranges(type(spec))}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if f.name in ranged or dataclasses.is_dataclass(value):
            continue
        with pytest.raises(pc.SpecError, match=rf"\.{f.name} = "):
            dataclasses.replace(spec, **{f.name: "no-such-choice; .control"})


@pytest.mark.parametrize("name", NAMES)
def test_example_runs_in_spice_and_the_surrogate_answers_alike(name):
    block = BLOCKS[name]
    spec = block.spec_type()
    stim = block.example(spec, 0)
    res = pc.simulate(spec, stim)
    got = predict(spec, stim)
    assert set(block.errors.outputs) <= set(res.outputs)
    for key in res.outputs:
        assert key in got, f"{name}: the surrogate lacks output {key!r}"
        assert np.shape(got[key]) == np.shape(res.outputs[key]), key
    errs = block.errors.errors([got], [res.outputs])
    assert errs, f"{name}: its error model reports nothing on its own example"
    assert res.provenance["block"] == name


@pytest.mark.parametrize("name", NAMES)
def test_benches_in_netlists_are_what_the_renderer_writes(name):
    for fname, deck in BLOCKS[name].benches().items():
        path = netlists_dir() / fname
        assert path.is_file(), f"{name} renders bench {fname}, missing from netlists/"
        assert path.read_text() == deck.render(LIB_DIR_FROM_NETLISTS, outputs="print"), f"{fname} is stale"


@pytest.mark.parametrize("name", NAMES)
def test_unhonoured_nonidealities_are_refused(name):
    block = BLOCKS[name]
    spec = block.spec_type()
    stim = block.example(spec, 0)
    default = pc.Nonidealities()
    nonzero = {"g_stuck_on_siemens": 50e-6, "g_stuck_off_siemens": 1e-6, "drift_time_s": 10.0}
    for f in dataclasses.fields(pc.Nonidealities):
        value = nonzero.get(f.name, 0.01)
        ni = dataclasses.replace(default, **{f.name: value})
        if f.name in block.honours:
            pc.prepare(spec, stim, ni, seed=1)  # realized without complaint
        else:
            with pytest.raises(pc.SpecError, match=rf"{name} block does not realize .*{f.name}"):
                pc.prepare(spec, stim, ni, seed=1)
