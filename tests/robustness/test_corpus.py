"""Every case of the bad-input corpus (:mod:`cases`) through the command line, in-process.

A case passes when the command ends with its status, its output names what is at fault (the
case's regular expression), no traceback is printed, and its check (nothing written, nothing
lost, the right numbers) holds. A Python exception escaping ``main`` fails the case as a
traceback would.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path

import pytest

from tests.robustness.cases import CASES, Case
from tests.robustness.world import World
from mmtrack_kd.cli import main
from mmtrack_kd.console import console, error_console


def run_case(case: Case, world: World, tmp: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run one case's command line; returns its status and all it said (stdout, stderr and
    warnings, whitespace collapsed so that wrapping does not matter)."""
    argv = case.argv(world, tmp)
    context = case.context(world, tmp) if case.context else contextlib.nullcontext()
    with context, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            status = main(argv)
        except SystemExit as exit:  # argparse's own usage errors
            status = int(exit.code or 0)
    out, err = capsys.readouterr()
    said = "\n".join([out, err, *(str(w.message) for w in caught)])
    return status, " ".join(said.split())


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """No wrapping of long paths in messages."""
    for target in (console, error_console):
        monkeypatch.setattr(target, "_width", 1000)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_a_clear_answer(case: Case, world: World, tmp_path: Path, capsys) -> None:
    status, said = run_case(case, world, tmp_path, capsys)
    assert "Traceback" not in said, said
    assert status == case.status, f"exit status {status}, expected {case.status}: {said}"
    assert re.search(case.message, said), f"{case.message!r} not in: {said}"
    if case.check is not None:
        case.check(world, tmp_path, said)


def test_the_corpus_is_large_and_its_ids_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) > 150
