"""The ngspice host process: `python -m pycosim.spice.host`, serving `SharedEngine` over pipes.

Protocol frames go over a private copy of stdout; fd 1 itself is pointed at stderr so that
nothing ngspice prints can corrupt them.
"""

from __future__ import annotations

import os
import sys


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    from ..errors import SpiceError
    from . import host_protocol
    from .engines import InProcessEngine

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
            else:
                reply = ("ok", engine.run(request[1]))
        except SpiceError as exc:
            reply = ("error", exc)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which re-raises it
            reply = ("error", SpiceError(f"ngspice host failed: {type(exc).__name__}: {exc}"))
        host_protocol.send(out, (*reply, _rss_mb()))


if __name__ == "__main__":
    main()
