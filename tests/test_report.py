"""Reports answer the question first: the summary table, validation tables that show what varies,
and `pycosim report` listing every field that varies across a store."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

import pycosim as pc
from pycosim.benches import example_read
from pycosim.cli import main
from pycosim.report import SUMMARY_HEADING, Report
from pycosim.validate import ValidationReport, validation_markdown

import rc_block


def _data_rows(md: str) -> list[list[str]]:
    """The cells of every table row of `md` after its header and rule."""
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip()[1:-1].split(" | ")] for line in lines[1:]]


def test_summary_table_comes_right_after_the_intro_with_one_row_per_call():
    rep = Report("pycosim demo: a and b", intro="One paragraph.")
    rep.section("First section", "text")
    rep.summary(block="a", system="4×4", spice_vs_surrogate="0.1 %", metric="0 → 1 %", verdict="works")
    rep.summary(block="b", system="loop", spice_vs_surrogate="0.2 %", metric="KL 0.1 → 0.3", verdict="degraded")
    md = rep.to_markdown()
    assert md.startswith("# pycosim demo: a and b\n\nOne paragraph.\n\n## " + SUMMARY_HEADING)
    assert md.index(SUMMARY_HEADING) < md.index("## First section")
    table = md.split(SUMMARY_HEADING)[1].split("## First section")[0]
    assert _data_rows(table) == [["a", "4×4", "0.1 %", "0 → 1 %", "works"], ["b", "loop", "0.2 %", "KL 0.1 → 0.3",
                                                                          "degraded"]]
    assert SUMMARY_HEADING not in Report("no rows").to_markdown()  # no section reported: no empty table


def _rc_section_with_summary(rep, ctx) -> None:
    """rc_block's demo section plus a summary row computed from its own run."""
    rc_block.demo_section(rep, ctx)
    spec = rc_block.RCSpec()
    stim = rc_block.example(spec, 0)
    err = float(np.max(np.abs(pc.predict(spec, stim)["v_out_volt"] - pc.simulate(spec, stim).outputs["v_out_volt"])))
    rep.summary(block="rc", system="default RC step", spice_vs_surrogate=f"{err:.2e} V max",
                metric="—", verdict="works" if err < 1e-4 else "off")


def test_run_demo_puts_a_row_per_reporting_section_before_the_sections(tmp_path):
    from pycosim.blocks.registry import register
    from pycosim.demo import run_demo

    register(dataclasses.replace(rc_block.BLOCK, demo=f"{__name__}:_rc_section_with_summary"))
    try:
        text = run_demo(tmp_path, blocks=["rc"], progress=False).read_text()
    finally:
        register(rc_block.BLOCK)
    assert text.startswith("# pycosim demo: first-order RC low-pass (test plug-in) — SPICE against calibrated")
    head, rest = text.split("## " + SUMMARY_HEADING)
    assert "## " not in head and rest.index("## RC low-pass (plug-in block)") > 0
    (row,) = _data_rows(rest.split("## RC low-pass")[0])
    assert row[0] == "rc" and row[-1] == "works"


def _grid_table() -> list[dict]:
    """A hand-made validation table of a DC read: GBW changes nothing, the ADC matters only without
    variation, size and n_cases are the same everywhere."""
    rows = []
    for rw, gbw, var, adc in itertools.product([0.5, 2.5], [1e6, 2e7], [0.0, 0.1], [0, 10]):
        base = {0.5: 2.284e-5, 2.5: 8.347e-6}[rw] * (1 - 0.1 * var)
        adc_err = base * (10 if adc and var == 0 else 1)
        rows.append({"r_wire_ohm": rw, "opamp.gbw_hz": gbw, "variation_sigma": var, "adc_bits": adc,
                     "size": "16x16", "n_cases": 4, "nrmse_i_out_amp": base,
                     "max_abs_i_out_amp": 5.6e-9, "nrmse_v_adc_volt": adc_err, "spice_s": 0.25, "surrogate_s": 0.05})
    return rows


def test_validation_markdown_hides_constant_fields_merges_rows_a_field_does_not_change_and_uses_percent():
    table = _grid_table()
    names = ("r_wire_ohm", "opamp.gbw_hz", "variation_sigma", "adc_bits")
    rep = ValidationReport(grid_names=names, keys=("i_out_amp",), table=[dict(r) for r in table], parity={})
    md = rep.to_markdown()
    assert rep.table == table  # the data other code reads is untouched
    header = md.splitlines()[0]
    assert header == ("| r_wire_ohm (Ω) | variation_sigma | adc_bits (bits) | nrmse_i_out_amp (%) | "
                      "max_abs_i_out_amp (A) | nrmse_v_adc_volt (%) |")  # no GBW, size or n_cases column
    assert "opamp.gbw_hz (1e+06, 2e+07 Hz) made no difference to any number shown" in md
    assert "Same in every row: size = 16x16, n_cases = 4." in md
    assert "Rows that differ only in adc_bits" in md
    rows = _data_rows(md)
    # 16 grid points: GBW merges all pairs (8 left); with variation the ADC changes nothing (2 more merge)
    assert len(rows) == 6
    assert ["0.5", "0.1", "any", "0.00226", "5.6e-09", "0.00226"] in rows
    assert ["0.5", "0", "10", "0.00228", "5.6e-09", "0.0228"] in rows  # NRMSE in %, 3 significant digits
    assert "SPICE 4 s, surrogate 0.8 s" in md  # timings summed under the table, not per row


def test_validation_markdown_keeps_every_row_when_every_field_matters():
    table = [{"r_wire_ohm": r, "size": "8x8", "n_cases": 2, "nrmse_i_out_amp": 1e-3 * r} for r in (0.5, 1.0, 2.5)]
    md = validation_markdown(table, ("r_wire_ohm",))
    assert [row[0] for row in _data_rows(md)] == ["0.5", "1", "2.5"]
    assert [row[1] for row in _data_rows(md)] == ["0.05", "0.1", "0.25"]
    assert "made no difference" not in md and "merged" not in md


def test_report_command_lists_every_field_that_varies_across_the_store(tmp_path, capsys):
    base = pc.CrossbarSpec(rows=4, cols=4, r_wire_ohm=1.5, opamp=pc.OpAmpSpec.opa4322())
    read = example_read(4, 4, 2, seed=1)
    cases = [pc.Case(base, read),
             pc.Case(dataclasses.replace(base, r_wire_ohm=0.5), read),
             pc.Case(dataclasses.replace(base, cell="1t1r", opamp=dataclasses.replace(base.opamp, gbw_hz=1e6)), read),
             pc.Case(base, read, pc.Nonidealities(variation_sigma=0.05), seed=3),
             pc.Case(dataclasses.replace(base, rows=6), example_read(6, 4, 2, seed=1))]
    store = tmp_path / "runs.h5"
    assert not pc.sweep(cases, store=store, progress=False).failures
    assert main(["report", "--store", str(store), "-o", "-"]) == 0
    md = capsys.readouterr().out
    header = next(line for line in md.splitlines() if line.startswith("| case id"))
    for name in ("r_wire_ohm (Ω)", "cell", "opamp.gbw_hz (Hz)", "variation_sigma"):
        assert f"| {name}" in header, (name, header)
    for name in ("rows", "cols", "opamp.a0", "iv_v0_volt", "read_noise_sigma"):  # size column; constant; default
        assert f"| {name}" not in header, (name, header)
    assert "the same in every run, off its default: opamp.a0 = " in md  # OPA4322's gain, shared by all
    rows = _data_rows(md)
    assert len(rows) == 5 and {r[2] for r in rows} == {"4x4", "6x4"}
