"""In-process figures: canonical encoding, chain verification, PDF rendering."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from defendable_canonical import perf as canonical_perf
from defendable_render import perf as render_perf


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def micro(quick: bool) -> dict[str, Any]:
    n = 20_000 if quick else 100_000
    chains = [canonical_perf.bench_chain_verify(n) for _ in range(3)]
    chain = {key: statistics.median(c[key] for c in chains) for key in chains[0]}
    return {
        "canonical_encodes_per_s": median_of(3, lambda: canonical_perf.bench_canonical_encodes(n)),
        "canonical_general_path_encodes_per_s": median_of(
            3, lambda: canonical_perf.bench_canonical_encodes(2_000, general=True)
        ),
        "chain_verify": chain,
        "render_pdfs_per_s": median_of(3, lambda: render_perf.bench_render(20 if quick else 60)),
        "render_naive_pdfs_per_s": median_of(
            1, lambda: render_perf.bench_render(5 if quick else 15, reuse_fonts=False)
        ),
    }
