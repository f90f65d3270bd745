"""Sessions: tests (default), lint, typecheck, bench, docs."""

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
    """`collapsesim bench` at full sizes, Numba then JAX; rewrites bench/README.md's tables.

    Arguments after ``--`` go to both commands: ``nox -s bench -- --repeats 9``.
    """
    session.install(".[test]")
    session.run("collapsesim", "bench", "--readme", "bench/README.md", *session.posargs)
    session.run("collapsesim", "bench", "rng", "gaussian", "tokens", "--backend", "jax",
                "--readme", "bench/README.md", *session.posargs)  # fmt: skip


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/ (MkDocs, strict: a warning fails it).

    ``nox -s docs -- serve`` serves it at http://127.0.0.1:8000 instead.
    """
    session.install(".[docs]")
    # Material prints a banner on its own end of life (May 2027; Zensical, its successor,
    # reads this mkdocs.yml): a notice about the theme, not a warning about these pages.
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:])
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs)
