"""How fast the Gaussian chain collapses against the sample size n: a scan.

The rate -dE[log sigma]/dT for n = 20 .. 320, with its 95% interval, beside the exact rate
(about 1/n for the maximum-likelihood fit), and the power law fitted through the points.
"""

from __future__ import annotations

from _common import fresh, options

from collapsesim.experiments import scan
from collapsesim.plots import plot_scan

out, figures, quick = options(__doc__)
chains, gens = (500, 50) if quick else (4000, 200)
res = scan.run("gaussian", {"num_chains": chains, "num_generations": gens},
               {"samples": "20,40,80,160,320"})  # fmt: skip
for row in res.rows:
    print(f"n = {row['samples']:g}: rate {row['rate']:.5f} "
          f"[{row['rate_lo']:.5f}, {row['rate_hi']:.5f}], exact {row['theory_rate']:.5f}")  # fmt: skip
[fit] = res.fits
print(f"rate ~ n^b: b = {fit['exponent']:.3f} (theory {fit['theory_exponent']:.3f})")
figure = fresh(figures / "rate-vs-samples.png")
plot_scan(res, figure)
print(f"figure: {figure}")
