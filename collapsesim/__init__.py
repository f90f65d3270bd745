"""collapsesim: simulate model collapse, generation after generation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("collapsesim")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0+unknown"
