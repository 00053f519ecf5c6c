"""Logs: INFO (normal events, progress) reaches a log file as it reaches a terminal."""

from __future__ import annotations

import logging

from mmtrack_kd.console import ProgressLog, setup_logging


def test_info_is_logged_when_output_is_not_a_terminal():
    """Under pytest stderr is a pipe, as in a batch job's log file."""
    try:
        setup_logging()
        assert logging.getLogger().level == logging.INFO
        setup_logging(quiet=True)
        assert logging.getLogger().level == logging.WARNING
    finally:
        logging.basicConfig(level=logging.WARNING, force=True)


def test_progress_log_writes_a_line_per_n_steps(caplog):
    log = logging.getLogger("progress-test")
    with caplog.at_level(logging.INFO, logger="progress-test"):
        lines = ProgressLog(log, "tracked", 25, every=10, enabled=True)
        for index in range(25):
            lines.step(f"seq{index}")
    assert [r.getMessage() for r in caplog.records] == [
        "tracked 10 of 25 (seq9)", "tracked 20 of 25 (seq19)", "tracked 25 of 25 (seq24)"]
    assert all(r.levelno == logging.INFO for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="progress-test"):
        ProgressLog(log, "tracked", 3, enabled=False).step()
    assert not caplog.records


def test_synthetic_generation_is_a_normal_event(tmp_path, caplog):
    from mmtrack_kd.plugins import default_registry

    cls = default_registry().dataset("synthetic")
    with caplog.at_level(logging.DEBUG):
        cls(cls.Options(root=tmp_path / "s", layout="lasher", split="test", n_train=1, n_test=1,
                        frames=8, width=64, height=64, workers=1))
    [record] = [r for r in caplog.records if "generating" in r.getMessage()]
    assert record.levelno == logging.INFO
