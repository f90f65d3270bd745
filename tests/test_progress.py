"""Progress where stderr is not a terminal: one plain line every --log-every seconds."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from collapsesim.cli._progress import drive, log_line

LINE = re.compile(
    r"^\[\d+:\d\d:\d\d\] simulating [\d,]+/[\d,]+ chain-generations \(\d+\.\d%\)"
    r"(, about \d+:\d\d:\d\d left)?$"
)


def _steps(n: int, pause: float) -> Iterator[Any]:
    for k in range(1, n + 1):
        time.sleep(pause)
        yield SimpleNamespace(done=k * 10, total=n * 10)
    return "result"


def _plain() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=False, width=200), buf


def test_plain_lines_every_few_seconds_and_a_last_one() -> None:
    console, buf = _plain()
    assert (
        drive("chains", _steps(8, 0.03), quiet=False, console=console, log_every=0.05) == "result"
    )
    lines = buf.getvalue().splitlines()
    # About one line per 0.05 s of the 0.24 s the steps took, then the last one.
    assert 2 <= len(lines) <= 6, lines
    assert all(LINE.match(x) for x in lines[:-1]), lines
    assert re.match(r"^\[\d+:\d\d:\d\d\] done: simulating 80/80 chain-generations \(100\.0%\)$",
                    lines[-1])  # fmt: skip
    # No terminal control codes in a log file.
    assert "\x1b" not in buf.getvalue()


def test_quiet_and_zero_write_nothing() -> None:
    for quiet, every in ((True, 0.01), (False, 0.0)):
        console, buf = _plain()
        assert drive("chains", _steps(3, 0.02), quiet=quiet, console=console,
                     log_every=every) == "result"  # fmt: skip
        assert buf.getvalue() == ""


def test_a_terminal_gets_bars_not_lines() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    drive("chains", _steps(3, 0.02), quiet=False, console=console, log_every=0.001)
    assert "chain-generations" in buf.getvalue()
    assert "done:" not in buf.getvalue()  # the bars, which are transient


def test_log_line_fields_and_units() -> None:
    gens = SimpleNamespace(description="generations", completed=2, total=5, fields={"loss": ""},
                           time_remaining=30.0)  # fmt: skip
    epochs = SimpleNamespace(description="epochs", completed=3, total=10,
                             fields={"loss": "loss 12.5 nats"}, time_remaining=None)  # fmt: skip
    text = log_line([gens, epochs], 75.0)
    assert text == ("[0:01:15] generations 2/5 (40.0%); epochs 3/10 (30.0%), loss 12.5 nats, "
                    "about 0:00:30 left")  # fmt: skip
    scan = SimpleNamespace(description="grid points", completed=1, total=4, fields={},
                           time_remaining=None)  # fmt: skip
    work = SimpleNamespace(description="chain-generations", completed=5000, total=20000,
                           fields={}, time_remaining=None)  # fmt: skip
    assert log_line([scan, work], 3725.0, ["", "chain-generations"]) == (
        "[1:02:05] grid points 1/4 (25.0%); chain-generations 5,000/20,000 "
        "chain-generations (25.0%)"
    )
    # The last line: the work is over, every count full.
    assert log_line([scan, work], 3725.0, ["", "chain-generations"], done=True) == (
        "[1:02:05] done: grid points 4/4 (100.0%); chain-generations 20,000/20,000 "
        "chain-generations (100.0%)"
    )


def test_the_cli_logs_to_a_pipe() -> None:
    args = ["gaussian", "--chains", "2000", "--generations", "400", "--samples", "200",
            "--method", "sample", "--log-every", "0.2", "--threads", "1"]  # fmt: skip
    res = subprocess.run([sys.executable, "-c", "from collapsesim.cli import main; main()", *args],
                         capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    lines = [x for x in res.stderr.splitlines() if x.startswith("[")]
    assert lines
    assert lines[-1].split("] ", 1)[1].startswith("done: simulating 800,000/800,000")
    assert all(LINE.match(x) for x in lines[:-1]), res.stderr
    assert "mean std" in res.stdout  # the table still goes to stdout


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_bad_log_every_is_one_line(value: str) -> None:
    from typer.testing import CliRunner

    from collapsesim.cli import app

    res = CliRunner().invoke(app, ["gaussian", "--chains", "2", "--log-every", value])
    assert res.exit_code == 2
    assert "--log-every must be a number of seconds >= 0" in res.output
