"""Sessions: tests (default), lint, typecheck, bench."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (not the slow statistical runs; pass -m slow for those)."""
    session.install(".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy over the package and the kernels."""
    session.install(".", "mypy")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """`collapsesim bench` (every family, full sizes); rewrites bench/README.md's table.

    Arguments after ``--`` go to the command: ``nox -s bench -- --backend jax``.
    """
    session.install(".[test]")
    session.run("collapsesim", "bench", "--readme", "bench/README.md", *session.posargs)
