"""The Gaussian chain under replace, accumulate and 10% fresh data, side by side.

Three stored runs on the same seed (so their chains share draws and their differences are
paired), compared on sigma as `collapsesim compare` does: replacing the data collapses
sigma, accumulating it or mixing in fresh data holds it up.
"""

from __future__ import annotations

from _common import fresh, options

import collapsesim
from collapsesim.compare import compare
from collapsesim.plots import plot_compare

out, figures, quick = options(__doc__)
chains, gens = (200, 50) if quick else (2000, 200)
dirs = []
for regime, extra in (("replace", {}), ("accumulate", {}), ("fresh", {"fresh_fraction": 0.1})):
    cfg = collapsesim.GaussianConfig(num_chains=chains, num_generations=gens, num_samples=50,
                                     regime=regime, **extra)  # fmt: skip
    collapsesim.run(cfg, out=fresh(out / f"gaussian-{regime}"))
    dirs.append(out / f"gaussian-{regime}")
cmp = compare(dirs, "sigma")
for e, d in zip(cmp.entries[1:], cmp.differences, strict=True):
    print(f"{e.label}: sigma_T {e.final_mean:.4f}, minus replace's {d.value:+.4f} "
          f"± {d.stderr:.4f} ({d.method}, z = {d.z:.1f})")  # fmt: skip
figure = fresh(figures / "replace-vs-accumulate.png")
plot_compare(cmp, figure)
print(f"figure: {figure}")
