"""What a family declares: the one record the command line, ``run``, ``load`` and ``scan`` read.

A family is a kind of model trained on its own output (a Gaussian, a mixture, a token
distribution, a VAE, a language model). Its module builds one :class:`Family` and the
registry (:mod:`collapsesim.families`) lists it; nothing else in the package names a
family.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Family", "ScanMeasure"]

ScanMeasure = Callable[[Any, Any], dict[str, Any]]
"""``measure(cfg, result)``: a scan point's ``rate``, ``rate_se``, ``level``, ``level_se``
and ``theory_rate`` (None where theory has no closed form)."""


@dataclass(frozen=True)
class Family:
    """One family of collapse experiments.

    Attributes:
        name: the command's name (``collapsesim NAME``) and run.json's ``family``.
        config: the frozen configuration dataclass; its fields, declared with
            :func:`collapsesim.config.opt`, are the command's options.
        runner: the module (dotted path) with ``iterate(cfg, **options)``, a generator
            of progress reports returning the result, and ``load(directory)``.
        help: the command's help: a summary line, a blank line, then details.
        kind: ``chains`` (Monte Carlo chains through the shared driver, with threads and
            checkpoints) or ``neural`` (one model trained per generation).
        table: the result as a Rich renderable for the terminal.
        plot: ``module:function`` of the function that writes the result's figure to a
            path, PNG, PDF or SVG by its extension (imported when a figure is asked for:
            it brings matplotlib).
        plot_help: what ``--plot`` draws.
        presets: named settings; options given beside a preset override it.
        preset_help: what the presets are.
        scan: scannable parameters, option name (``samples``) -> config field.
        measure: a scan point's collapse rate and level (see :data:`ScanMeasure`).
        cluster: whether the command can join a multi-host JAX run.
        prepare: turns the command line's values into the config's (read files etc.);
            called with the values and the set of fields given explicitly.
        stored: where the run directory holds more than the Parquet tables (``--out``).
        progress: the progress bars the runner's reports drive (``chains``, ``vae``, ``lm``).
        seed_help: what ``--seed`` fixes, where a family's draws are not per chain.
        errors: ``module:Class`` of the family's own typed errors for bad input, which
            the command line reports as one line.
        deprecated: old option names -> (field, message) kept for one release.
        headline: the metric ``collapsesim compare`` shows when none is asked for.
    """

    name: str
    config: type
    runner: str
    help: str
    kind: str
    table: Callable[[Any], Any]
    plot: str
    plot_help: str
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    preset_help: str = ""
    scan: Mapping[str, str] = field(default_factory=dict)
    measure: ScanMeasure | None = None
    cluster: bool = False
    prepare: Callable[[dict[str, Any], set[str]], dict[str, Any]] | None = None
    stored: str = ""
    progress: str = "chains"
    seed_help: str = ""
    errors: tuple[str, ...] = ()
    deprecated: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    headline: str = ""

    def draw(self, result: Any, path: Path) -> None:
        """Write the result's figure to ``path`` (PNG, PDF or SVG by its extension)."""
        _named(self.plot)(result, path)

    def error_types(self) -> tuple[type[Exception], ...]:
        """The family's own typed errors (see ``errors``)."""
        return tuple(_named(name) for name in self.errors)

    def module(self) -> Any:
        """The runner module (imported on first use: it brings Numba or JAX)."""
        return importlib.import_module(self.runner)

    def iterate(self, cfg: Any, **options: Any) -> Any:
        """The runner's generator for ``cfg``: progress reports, then the result."""
        return self.module().iterate(cfg, **options)

    def run(self, cfg: Any, **options: Any) -> Any:
        """Run ``cfg`` to the end; return its result."""
        return self.module().run(cfg, **options)

    def load(self, directory: Path) -> Any:
        """Load the complete run stored in ``directory``."""
        return self.module().load(directory)

    def make_config(self, values: Mapping[str, Any], given: set[str], preset: str | None) -> Any:
        """The configuration from defaults, a preset, then the options given.

        Raises:
            ConfigError: an unknown preset, or values the configuration refuses.
        """
        from ..config import ConfigError

        merged: dict[str, Any] = {}
        if preset is not None:
            if preset not in self.presets:
                known = ", ".join(self.presets)
                raise ConfigError(f"unknown preset {preset!r}; choose one of {known}")
            merged.update(self.presets[preset])
        merged.update({k: v for k, v in values.items() if k in given or k not in merged})
        if self.prepare is not None:
            merged = self.prepare(merged, given)
        return self.config(**merged)


def _named(name: str) -> Any:
    """The object ``module:attribute`` names."""
    module, _, attribute = name.partition(":")
    return getattr(importlib.import_module(module), attribute)
