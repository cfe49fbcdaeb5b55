"""The ngspice host process: `python -m pycosim.spice.host`, serving `SharedEngine` over pipes.

Protocol frames go over a private copy of stdout; fd 1 itself is pointed at stderr so that
nothing ngspice prints can corrupt them. The host imports only the circuit world (numpy,
PySpice, `pycosim.spice`; never torch, matplotlib or h5py: `pycosim`'s root is lazy) and
runs one compute thread (`pycosim.threads`), so it starts in a fraction of a second.

Requests: ("version",) -> the ngspice version; ("run", deck) -> list of Plots;
("status",) -> {"pid", "modules": top-level modules loaded, "torch_threads": int or None},
which tests use to check that the host stays torch-free.
"""

from __future__ import annotations

import os
import sys


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _status() -> dict:
    torch = sys.modules.get("torch")
    return {"pid": os.getpid(), "modules": sorted({m.partition(".")[0] for m in sys.modules}),
            "torch_threads": None if torch is None else torch.get_num_threads()}


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    from ..errors import SpiceError
    from ..threads import use_one_thread
    from . import host_protocol
    from .engines import InProcessEngine

    use_one_thread()

    engine = InProcessEngine()
    inp = sys.stdin.buffer
    while True:
        try:
            request = host_protocol.receive(inp)
        except EOFError:
            return
        try:
            if request[0] == "version":
                reply = ("ok", engine.version())
            elif request[0] == "status":
                reply = ("ok", _status())
            else:
                reply = ("ok", engine.run(request[1]))
        except SpiceError as exc:
            reply = ("error", exc)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which re-raises it
            reply = ("error", SpiceError(f"ngspice host failed: {type(exc).__name__}: {exc}"))
        host_protocol.send(out, (*reply, _rss_mb()))


if __name__ == "__main__":
    main()
