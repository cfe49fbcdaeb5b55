"""Kill-test helper: `STORE` runs a fixed 16-case sweep (one worker) and prints its counts as JSON;
`STORE --write-loop` writes one stored result under 400 case ids as fast as it can."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import pycosim as pc

ENGINE = "shared"
N_CASES = 16


def kill_test_cases() -> list[pc.Case]:
    """16 crossbar reads of ~0.2 s each: 24x24, 6 reads, a few with programming variation."""
    spec = pc.CrossbarSpec(rows=24, cols=24, r_wire_ohm=1.0)
    cases = []
    for k in range(N_CASES):
        rng = np.random.default_rng(1000 + k)
        read = pc.CrossbarRead(g_siemens=rng.uniform(1e-6, 1e-4, (24, 24)), v_in_volt=rng.uniform(-0.2, 0.2, (6, 24)))
        nonideal = pc.Nonidealities(variation_sigma=0.05) if k % 3 == 0 else pc.Nonidealities()
        cases.append(pc.Case(spec, read, nonideal, seed=k))
    return cases


def main(store: str) -> None:
    with ProcessPoolExecutor(max_workers=1) as ex:
        res = pc.sweep(kill_test_cases(), store, ex, engine=ENGINE, progress=False)
    print(json.dumps({"n_run": res.n_run, "n_skipped": res.n_skipped, "n_failed": res.n_failed,
                      "case_ids": list(res.case_ids)}))


def write_loop(store: str) -> None:
    """Keep the store busy writing, so that a SIGKILL lands inside a write."""
    from pycosim.store import write_result

    spec = pc.CrossbarSpec(rows=8, cols=8)
    rng = np.random.default_rng(0)
    read = pc.CrossbarRead(g_siemens=rng.uniform(1e-6, 1e-4, (8, 8)), v_in_volt=rng.uniform(-0.2, 0.2, (6, 8)))
    result = pc.simulate(spec, read, engine=ENGINE)
    cases = [pc.Case(spec, read, seed=k) for k in range(400)]
    print("writing", flush=True)
    for case in cases:
        write_result(store, case.case_id, case, result)


if __name__ == "__main__":
    if sys.argv[2:] == ["--write-loop"]:
        write_loop(sys.argv[1])
    else:
        main(sys.argv[1])
