"""The LIF neuron's comparator as a user's part: `LIFSpec.comparator`, swapped in like a user's op-amp.

`lif_neuron` (circuits/lif.lib) instances `lif_cmp` (circuits/lif_cmp.lib) with in+ the membrane and in− a
DC source at the threshold v_th + offset. A user's comparator (a `Subcircuit` with ports in+, in−, out, then
internal ones) keeps that contract: out is a logic level, 0 V with in+ below in−, 1 V above (the one-shot
triggers where out rises through 0.5 V, so any trip offset and delay of the user's circuit add to the neuron's);
it drives the neuron's 100 Ω / 10 fF edge RC; it is self-contained (its own supply and devices, no pycosim
subcircuit). `with_user_comparator` leaves lif_cmp.lib out of the deck and pastes the user's checked file and a
wrapper `.subckt lif_cmp` around it (the `acmp` gain parameter is then unused). Circuit world: no torch.
"""

from __future__ import annotations

from ...spice import Deck
from ...subcircuit import Subcircuit, check_part, swap_library

def check_comparator(owner: str, sub: object) -> Subcircuit:
    """`LIFSpec.comparator`: a self-contained Subcircuit with ports in+, in−, out (then internal ones)."""
    return check_part(sub, owner, what="comparator", ports="in+ (membrane), in- (threshold), out (0 V / 1 V)",
                      min_ports=3)


def with_user_comparator(deck: Deck, sub: Subcircuit | None) -> Deck:
    """`deck` with the user's comparator in every neuron (`swap_library`: lif_cmp.lib left out, the `lif_cmp`
    wrapper around the user's part pasted in; its `acmp` unused). Unchanged without a user comparator."""
    if sub is None:
        return deck
    return swap_library(deck, "lif_cmp.lib", "lif_cmp", sub, ("inp", "inn", "out"))
