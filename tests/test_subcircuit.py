"""User subcircuits by port contract (issue: bring your own circuit, part 1): the file checks, the instance line,
and the content hash that makes a changed model a new case."""

from __future__ import annotations

import math
import subprocess

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
