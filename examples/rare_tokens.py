"""Token distributions trained on their own samples lose their rare tokens.

A Zipf distribution over 1000 tokens, n = 1000 draws per generation: the rank-frequency
curve of chain 0 at a few generations, and entropy and support across chains.
"""

from __future__ import annotations

from _common import fresh, options

import collapsesim
from collapsesim.families import get

out, figures, quick = options(__doc__)
chains, gens = (50, 50) if quick else (1000, 300)
cfg = collapsesim.TokenConfig(num_chains=chains, num_generations=gens, num_samples=1000,
                              categories=1000)  # fmt: skip
result = collapsesim.run(cfg)
s = result.summary
print(f"support {s['original_support']} -> {s['mean_final_support']:.1f} categories, "
      f"heterozygosity {s['mean_final_heterozygosity']:.4f} "
      f"(exact {s['theory_mean_final_heterozygosity']:.4f})")  # fmt: skip
figure = fresh(figures / "rare-tokens.png")
get("tokens").draw(result, figure)
print(f"figure: {figure}")
