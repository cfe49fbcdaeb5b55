"""The README's Python snippets run as written, in order, in one namespace (as a reader pastes them
into one session), in an empty folder."""

from __future__ import annotations

import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    """Every ```python block of a Markdown text, dedented (blocks inside list items are indented)."""
    return [textwrap.dedent(m.group(2)) for m in re.finditer(r"^( *)```python\n(.*?)^\1```", text, re.M | re.S)]


def run_blocks(blocks: list[str], folder: Path) -> dict:
    """Run `blocks` one after another in one namespace inside `folder`; returns the namespace."""
    namespace: dict = {"__name__": "__readme__"}
    cwd = os.getcwd()
    os.chdir(folder)
    sys.path.insert(0, str(Path(__file__).parent))  # the "Adding a block" snippet imports tests/rc_block.py
    try:
        for k, block in enumerate(blocks):
            exec(compile(block, f"README.md python block {k + 1}", "exec"), namespace)
    finally:
        sys.path.remove(str(Path(__file__).parent))
        os.chdir(cwd)
    return namespace


def test_readme_has_the_snippets_this_test_runs():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 5 and all(b.strip() for b in blocks)


@pytest.mark.slow  # ~25 s on two idle cores; minutes when they are busy (the score model's torch training)
def test_readme_python_snippets_run_as_written(tmp_path):
    from pycosim.blocks.registry import register

    import rc_block

    try:
        ns = run_blocks(python_blocks(README.read_text()), tmp_path)
    finally:
        register(rc_block.BLOCK)  # the snippet re-registers "rc" with its own module paths
    # the crossbar snippets left their store and model; the last `res` is the TCAM snippet's search
    assert ns["res"].outputs["v_ml_volt"].shape == (2, 16) and ns["res"].outputs["match"][0, 0]
    assert (tmp_path / "runs.h5").is_file() and (tmp_path / "model.json").is_file()
