"""User subcircuits by port contract (issue: bring your own circuit, part 1): the file checks, the instance line,
and the content hash that makes a changed model a new case."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest

import pycosim as pc
from pycosim.subcircuit import Subcircuit

MEMRISTOR = """* a linear memristor cell with a state node (example)
.subckt ymem te be xsv params: g=34e-6 tau=1e-3
R1 te be {1/g}
Cx xsv 0 1e-9
Rx xsv 0 {tau/1e-9}
.ends ymem
"""


def _file(tmp_path, text, name="ymem.lib"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_a_valid_file_gives_an_instance_with_fresh_internal_nodes(tmp_path):
    sub = Subcircuit(path=_file(tmp_path, MEMRISTOR), name="ymem", ports=("te", "be", "xsv"),
                     params={"tau": 2e-3}, conductance_param="g")
    line = sub.instance("c0_1", ("w0_1", "b0_1"), 40e-6)
    assert line.startswith("Xc0_1 w0_1 b0_1 c0_1_xsv ymem params: ")
    assert "g=4.0000000000000003e-05" in line and "tau=2.0000000000000000e-03" in line   # exact doubles
    # the checked text runs in ngspice as a plain deck with the instance
    deck = "* t\n" + sub.text() + "\nV1 w0_1 0 dc 0.1\nVb b0_1 0 dc 0\n" + line + "\n.op\n.end\n"
    out = subprocess.run(["ngspice", "-b"], input=deck, capture_output=True, text=True, timeout=30)
    assert "error" not in out.stdout.lower() + out.stderr.lower()
    assert pc.specjson.from_json(pc.specjson.to_json(sub)) == sub


@pytest.mark.parametrize("text, line, what", [
    (MEMRISTOR + ".control\nshell rm -rf /tmp/x\n.endc\n", 7, ".control"),
    (MEMRISTOR.replace("Rx xsv 0", "shell xsv 0"), 5, "shell"),
    (".include /etc/passwd\n" + MEMRISTOR, 1, ".include"),
    (MEMRISTOR + ".tran 1n 1u\n", 7, ".tran"),
    (MEMRISTOR + ".lib other.lib\n", 7, ".lib"),
])
def test_forbidden_lines_are_refused_naming_file_and_line(tmp_path, text, line, what):
    p = _file(tmp_path, text)
    with pytest.raises(pc.SpecError, match=rf"ymem\.lib:{line}: .*{what}"):
        Subcircuit(path=p, name="ymem", ports=("te", "be", "xsv"), conductance_param="g")


def test_missing_subckt_wrong_ports_and_bad_parameters_are_refused(tmp_path):
    p = _file(tmp_path, MEMRISTOR)
    with pytest.raises(pc.SpecError, match=r"ymem\.lib: no \.subckt other"):
        Subcircuit(path=p, name="other", ports=("a", "b"))
    with pytest.raises(pc.SpecError, match=r"ymem\.lib:2: \.subckt ymem has 3 nodes"):
        Subcircuit(path=p, name="ymem", ports=("te", "be"))
    with pytest.raises(pc.SpecError, match=r"params\['tau'\] = nan must be a finite number"):
        Subcircuit(path=p, name="ymem", ports=("te", "be", "xsv"), params={"tau": math.nan})
    with pytest.raises(pc.SpecError, match="must be an identifier"):
        Subcircuit(path=p, name="ymem", ports=("te", "be", "xsv"), params={"t au": 1.0})
    with pytest.raises(pc.SpecError, match="is not a file"):
        Subcircuit(path=tmp_path / "missing.lib", name="ymem", ports=("te",))


def test_one_changed_character_changes_the_hash(tmp_path):
    a = Subcircuit(path=_file(tmp_path, MEMRISTOR, "a.lib"), name="ymem", ports=("te", "be", "xsv"))
    b = Subcircuit(path=_file(tmp_path, MEMRISTOR.replace("1e-9\n", "2e-9\n", 1), "b.lib"), name="ymem",
                   ports=("te", "be", "xsv"))
    assert a.sha256 != b.sha256 and len(a.sha256) == 64


def test_ports_on_continuation_lines_count(tmp_path):
    text = MEMRISTOR.replace(".subckt ymem te be xsv params:", ".subckt ymem te be\n+ xsv\n+ params:")
    sub = Subcircuit(path=_file(tmp_path, text), name="YMEM", ports=("te", "be", "xsv"), conductance_param="g")
    assert sub.instance("c", ("a", "b"), 1e-5).split()[:4] == ["Xc", "a", "b", "c_xsv"]


USINH = """* a user's cell: a sinh I-V below threshold and a state node that does not move under read
.subckt usinh te be xsv params: g=34e-6 v0=0.15
B1 te be I = {g*v0}*sinh(V(te,be)/{v0})
Rx xsv 0 1e9
.ends usinh
"""


def test_a_user_cell_in_a_crossbar_runs_in_spice_and_the_surrogate_calibrates_to_it(tmp_path):
    """An 8×8 crossbar of the user's sinh cells (v0 = 0.15 V inside the file, 1 Ω wires): the surrogate starts
    from v0 = 0.25 V and amplitude 1, and after calibration on 6 runs meets 0.5 % NRMSE on 2 held out."""
    sub = Subcircuit(path=_file(tmp_path, USINH, "usinh.lib"), name="usinh", ports=("te", "be", "xsv"),
                     conductance_param="g")
    spec = pc.CrossbarSpec(rows=8, cols=8, r_wire_ohm=1.0, cell=sub)
    rng = np.random.default_rng(0)
    cases = [pc.Case(spec, pc.CrossbarRead(g_siemens=rng.uniform(10e-6, 60e-6, (8, 8)),
                                           v_in_volt=rng.uniform(-0.3, 0.3, (6, 8))), seed=s) for s in range(8)]
    runs = pc.sweep(cases, store=tmp_path / "runs.h5", progress=False)
    res = pc.load_result(tmp_path / "runs.h5", cases[0].case_id)
    assert f"begin user subcircuit usinh sha256 {sub.sha256[:12]}" in res.netlist and str(tmp_path) not in res.netlist
    fit = pc.calibrate(spec, runs, holdout=0.25, seed=0, max_iter=60, progress=False)
    got = fit.model.physical_parameters()
    assert got["iv_v0_volt"] == pytest.approx(0.15, rel=0.01) and got["cell_gain"] == pytest.approx(1.0, rel=0.01)
    assert fit.report.held_out_error["i_out_amp"]["nrmse"] < 0.005
    start = pc.surrogate(spec)
    before = np.concatenate([start.predict(c)["i_out_amp"].detach().numpy().ravel() for c, _ in fit.held_out])
    ref = np.concatenate([r.outputs["i_out_amp"].ravel() for _, r in fit.held_out])
    assert pc.metrics.nrmse(before, ref) > 10 * fit.report.held_out_error["i_out_amp"]["nrmse"]


def test_a_changed_user_file_is_a_new_case(tmp_path):
    read = pc.CrossbarRead(g_siemens=np.full((2, 2), 30e-6), v_in_volt=np.full((1, 2), 0.1))
    ids = []
    for k, text in enumerate((USINH, USINH.replace("1e9", "2e9"))):
        sub = Subcircuit(path=_file(tmp_path, text, f"u{k}.lib"), name="usinh", ports=("te", "be", "xsv"),
                         conductance_param="g")
        ids.append(pc.Case(pc.CrossbarSpec(rows=2, cols=2, cell=sub), read).case_id)
    assert ids[0] != ids[1]


def test_non_finite_parameter_values_in_the_file_are_refused_naming_file_and_line(tmp_path):
    for text, line in ((MEMRISTOR.replace("g=34e-6", "g=nan"), 2), (".param k=1e999\n" + MEMRISTOR, 1),
                       (MEMRISTOR.replace(" tau=1e-3", "\n+ tau=inf"), 3)):
        with pytest.raises(pc.SpecError, match=rf"ymem\.lib:{line}: parameter \w+ = \S+ must be a finite number"):
            Subcircuit(path=_file(tmp_path, text), name="ymem", ports=("te", "be", "xsv"))
    ok = ".param vt=25.85m big=1.5meg e={vt*2}\n" + MEMRISTOR   # SPICE suffixes and expressions pass
    assert Subcircuit(path=_file(tmp_path, ok), name="ymem", ports=("te", "be", "xsv")).sha256


def _macro_copy(tmp_path, name="myamp"):
    """pycosim's own single-pole macro-model as a user's file (renamed), so the answers are known."""
    text = (pc.resources.circuits_dir() / "opamp.lib").read_text()
    return _file(tmp_path, text.replace(".subckt opamp ", f".subckt {name} ").replace(".ends opamp", f".ends {name}"),
                 f"{name}.lib")


MACRO = dict(a0=2e4, gbw_hz=5e6, offset_volt=1e-3, v_rail_pos_volt=2.5, v_rail_neg_volt=-2.5, r_out_ohm=10.0)


def _user_macro(tmp_path) -> Subcircuit:
    return Subcircuit(path=_macro_copy(tmp_path), name="myamp", ports=("inp", "inn", "out"),
                      params={"a0": 2e4, "gbw": 5e6, "vos": 1e-3, "vpos": 2.5, "vneg": -2.5, "rout": 10.0})


def test_a_user_opamp_runs_wherever_the_macro_model_did(tmp_path):
    """The macro-model's own text as a user's op-amp: the crossbar's TIAs (with drawn offsets) and every op-amp of
    an integrator loop (integrators, TIAs, ReLU stages, inverters) give the macro-model's answers exactly."""
    sub = _user_macro(tmp_path)
    read = pc.CrossbarRead(g_siemens=np.random.default_rng(0).uniform(10e-6, 60e-6, (6, 6)),
                           v_in_volt=np.random.default_rng(1).uniform(-0.2, 0.2, (3, 6)))
    noisy = pc.Nonidealities(opamp_offset_sigma_volt=2e-3)
    a = pc.simulate(pc.CrossbarSpec(rows=6, cols=6, opamp=pc.OpAmpSpec(**MACRO)), read, noisy, seed=3)
    b = pc.simulate(pc.CrossbarSpec(rows=6, cols=6, opamp=sub), read, noisy, seed=3)
    np.testing.assert_allclose(b.outputs["v_out_volt"], a.outputs["v_out_volt"], rtol=0, atol=1e-12)
    assert "opamp.lib --" in b.netlist and "pycosim wrapper: the `opamp` interface" in b.netlist
    assert b.netlist.count(".subckt opamp ") == 1
    assert b.provenance["user_parts"] == f"{sub.label}; opamp wrapper of {sub.label}" and a.provenance["user_parts"] == ""
    from pycosim.blocks.integrator import example_run

    spec_m = pc.IntegratorSpec(n_states=2, n_hidden=4, opamp=pc.OpAmpSpec(**MACRO))
    spec_u = pc.IntegratorSpec(n_states=2, n_hidden=4, opamp=sub)
    assert spec_u.opamp.circuit == sub and not spec_u.opamp.ideal
    ra, rb = pc.simulate(spec_m, example_run(spec_m)), pc.simulate(spec_u, example_run(spec_u))
    for key in ("x_volt", "h_volt"):
        np.testing.assert_allclose(rb.outputs[key], ra.outputs[key], rtol=0, atol=1e-12)


def test_a_user_opamp_is_checked_and_its_file_is_in_the_case_id(tmp_path):
    sub = _user_macro(tmp_path)
    two = Subcircuit(path=_file(tmp_path, MEMRISTOR), name="ymem", ports=("te", "be", "xsv"))
    with pytest.raises(pc.SpecError, match="OpAmpSpec.circuit: the Subcircuit 'ymem' must have at least 3 ports"):
        pc.CrossbarSpec(opamp=Subcircuit(path=_file(tmp_path, MEMRISTOR), name="ymem", ports=("te", "be", "xsv"),
                                         conductance_param="g"))
    assert pc.CrossbarSpec(opamp=two).opamp.circuit == two      # three ports, no conductance: an op-amp
    with pytest.raises(pc.SpecError, match="the name 'opamp' is pycosim's"):
        pc.OpAmpSpec.user(Subcircuit(path=_macro_copy(tmp_path, "opamp"), name="opamp", ports=("inp", "inn", "out")))
    wraps_ours = _file(tmp_path, ".subckt amp2 inp inn out\nXa inp inn out opamp\n.ends amp2\n", "amp2.lib")
    with pytest.raises(pc.SpecError, match=r"amp2\.lib:2: OpAmpSpec\.circuit: the file instances 'opamp'"):
        pc.CrossbarSpec(opamp=Subcircuit(path=wraps_ours, name="amp2", ports=("inp", "inn", "out")))  # would recurse
    ours_model = _file(tmp_path, MEMRISTOR.replace("R1 te be {1/g}", "D1 te be dact\n.model dact d (is=1e-14)"),
                       "dcell.lib")
    with pytest.raises(pc.SpecError, match=r"dcell\.lib:3: LIFSpec\.cell: the file uses the model 'dact'"):
        pc.LIFSpec(cell=Subcircuit(path=ours_model, name="ymem", ports=("te", "be", "xsv"), conductance_param="g"))
    with pytest.raises(pc.SpecError, match="needs finite a0 and gbw_hz"):
        pc.OpAmpSpec(circuit=sub)
    with pytest.raises(pc.SpecError, match="CrossbarSpec.opamp = 3 must be an OpAmpSpec or a Subcircuit"):
        pc.CrossbarSpec(opamp=3)
    read = pc.CrossbarRead(g_siemens=np.full((2, 2), 30e-6), v_in_volt=np.full((1, 2), 0.1))
    other = Subcircuit(path=_file(tmp_path, _macro_copy(tmp_path).read_text().replace("ksp=10e-3", "ksp=11e-3"),
                                  "other.lib"), name="myamp", ports=("inp", "inn", "out"), params=dict(sub.params))
    ids = {pc.Case(pc.CrossbarSpec(rows=2, cols=2, opamp=s), read).case_id for s in (sub, other)}
    assert len(ids) == 2
