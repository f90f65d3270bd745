"""collapsesim: simulate model collapse, generation after generation."""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("collapsesim")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0+unknown"

# Installed, the kernels are the subpackage collapsesim/kernels. In a source checkout
# they sit in kernels/ beside this package (the wheel maps one onto the other); let
# the package find them there too, so `python -m pytest` in a checkout works.
_here = Path(__file__).resolve().parent
if not (_here / "kernels").is_dir() and (_here.parent / "kernels" / "_rng.py").is_file():
    import importlib.util as _util
    import sys as _sys

    _spec = _util.spec_from_file_location(
        f"{__name__}.kernels",
        _here.parent / "kernels" / "__init__.py",
        submodule_search_locations=[str(_here.parent / "kernels")],
    )
    if _spec is not None and _spec.loader is not None and f"{__name__}.kernels" not in _sys.modules:
        _kernels = _util.module_from_spec(_spec)
        _sys.modules[_spec.name] = _kernels
        _spec.loader.exec_module(_kernels)

# After the kernels are findable: the runners that run() imports need them. results itself
# imports only numpy and the store, so `import collapsesim` loads neither Numba nor JAX.
from .results import Result, UnknownTableError, load, run

__all__ = [
    "GaussianConfig",
    "KdeConfig",
    "LmConfig",
    "MixtureConfig",
    "MvGaussianConfig",
    "RegressionConfig",
    "Result",
    "TokenConfig",
    "UnknownTableError",
    "VaeConfig",
    "__version__",
    "load",
    "run",
]

_CONFIGS = {
    "GaussianConfig": "gaussian",
    "MixtureConfig": "mixture",
    "MvGaussianConfig": "mvgaussian",
    "RegressionConfig": "regression",
    "KdeConfig": "kde",
    "TokenConfig": "tokens",
    "VaeConfig": "vae",
    "LmConfig": "lm",
}


def __getattr__(name: str) -> object:
    # The families' configurations, imported on first use (``import collapsesim`` stays light).
    from ._lazy import family_attribute

    return family_attribute(__name__, _CONFIGS, name)
