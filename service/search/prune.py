"""Pruning-based search on NB201 (TE-NAS, ICLR'21; used by xi-GSNR, ICCV'23, Sec. 4.2.1 on NB201).

Start from the supernet that keeps all five ops on every edge (space ``nb201_super``). Each round, for every
edge with more than one op left and every op on it, score the supernet with that op removed; on every edge,
prune the op whose removal scores best (the op that contributes least), all edges at once ("the pruning number
of operations associated with each edge [is] 1 for each step", xi-GSNR). After four rounds one op is left per
edge: an NB201 cell. Rounds score 30 + 24 + 18 + 12 = 84 supernet states, then the final cell as a state.

Our choices, where the papers leave them open: a population proxy (``az_nas``, an ensemble) is ranked over the
states of the round (TE-NAS ranks its candidates per round); ties go to the op first in NB201's op order; one
proxy seed per run (TE-NAS averages three repeats). Budget: every supernet state counts as one arch (85 per run,
whatever ``budget`` says); proxy calls are the same 85.
"""

from __future__ import annotations

from zcscore.search.common import argbest
from zcscore.search.scorer import Scorer
from zcscore.spaces.nb201_super import FULL, SuperState

STATES_PER_RUN = 30 + 24 + 18 + 12 + 1


def prune_search(scorer: Scorer) -> tuple[str, str]:
    """Prune the NB201 supernet with ``scorer`` (space ``nb201_super``); returns (NB201 arch, final state)."""
    if scorer.space.name != "nb201_super":
        raise ValueError(f"pruning search scores supernet states (space nb201_super), not {scorer.space.name}")
    state = SuperState(FULL)
    while not state.is_single_path():
        candidates: list[tuple[int, str, SuperState]] = [
            (edge, op, state.without(edge, op)) for edge, ops in enumerate(state.edges) if len(ops) > 1 for op in ops
        ]
        texts = [c[2].encode() for c in candidates]
        scorer.score(texts)
        fitness = scorer.fitness(texts, among=texts)
        for edge in range(len(state.edges)):
            idx = [i for i, c in enumerate(candidates) if c[0] == edge]
            if idx:
                best = idx[argbest([texts[i] for i in idx], [fitness[i] for i in idx])]
                state = state.without(edge, candidates[best][1])
    final = state.encode()
    scorer.score([final])
    return state.to_arch().to_str(), final
