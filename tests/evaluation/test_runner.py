"""The evaluation runner: a tiny checkpoint tracked over tiny synthetic data in one and two
worker processes, resumable result folders in the toolkits' layouts, scoring without images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmtrack_kd.checkpoints import VERSION, ModalityEntry, RunCheckpoint, RunPosition, save_model
from mmtrack_kd.data.crop import CropSettings
from mmtrack_kd.data.results_io import (
    otb_result_path,
    read_otb_result,
    read_vot_longterm_result,
    vot_longterm_files,
)
from mmtrack_kd.errors import DataError
from mmtrack_kd.evaluation.runner import (
    evaluate_checkpoint,
    resolve_datasets,
    resolve_targets,
    run_evaluate,
    score_folders,
)
from mmtrack_kd.models import build_model
from mmtrack_kd.plugins import default_registry
from mmtrack_kd.tracking import TrackerSettings

#: A 2-block, width-64 model (as tests/tracking): 2x2 template and 4x4 search grids.
TINY_MODEL = dict(template_size=32, search_size=64, patch_size=16, embed_dim=64, depth=2,
                  num_heads=2, head_channels=32)
#: Tiny synthetic data: 3 test sequences of 12 frames.
TINY_DATA = dict(n_train=1, n_test=3, frames=12, width=96, height=72, workers=1)
AUX = {"lasher": "thermal", "depthtrack": "depth"}


def write_checkpoint(path: Path, kind: str = "student", aux: str = "thermal", seed: int = 0) -> Path:
    """A tiny model's checkpoint with the entries the trainer writes."""
    torch.manual_seed(seed)
    model = build_model(kind, dict(TINY_MODEL))
    return save_model(model, path, version=VERSION, stage=kind,
                      modalities=[ModalityEntry("rgb"), ModalityEntry(aux)],
                      crop=CropSettings(32, 64, 2.0, 4.0, patch_size=16),
                      progress=RunPosition(epoch=1), recipe={})


def synthetic(root: Path, layout: str):
    cls = default_registry().dataset("synthetic")
    return cls(cls.Options(root=root, layout=layout, split="test", **TINY_DATA))


@pytest.fixture(scope="module")
def lasher_data(tmp_path_factory):
    return synthetic(tmp_path_factory.mktemp("data") / "lasher", "lasher")


@pytest.fixture(scope="module")
def depth_data(tmp_path_factory):
    return synthetic(tmp_path_factory.mktemp("data") / "depthtrack", "depthtrack")


def check_scores(result, keys):
    assert list(result.scores) == keys
    for value in result.scores.values():
        assert 0.0 <= value <= 1.0


@pytest.mark.slow
def test_otb_layout_one_worker_resume_and_score_without_images(tmp_path, lasher_data):
    checkpoint = write_checkpoint(tmp_path / "ckpt" / "tiny.pt")
    names = lasher_data.list_sequences()
    assert len(names) == 3
    results = evaluate_checkpoint(checkpoint, [("synthetic", lasher_data)], tmp_path / "out",
                                  workers=1, progress=False)
    folder = tmp_path / "out" / "tiny" / "synthetic"
    for name in names:
        boxes = read_otb_result(otb_result_path(folder, name))
        assert boxes.shape == (lasher_data.load_groundtruth(name).n_frames, 4)
        assert np.isfinite(boxes).all()
    first = results["synthetic"]
    assert first.protocol == "lasher"
    check_scores(first, ["PR", "NPR", "SR"])
    assert first.sequences == tuple(names)

    # resume: a finished sequence is not run again (its file is left untouched)
    kept = otb_result_path(folder, names[0])
    stamp = kept.stat().st_mtime_ns
    otb_result_path(folder, names[1]).unlink()
    again = evaluate_checkpoint(checkpoint, [("synthetic", lasher_data)], tmp_path / "out",
                                workers=1, progress=False)
    assert kept.stat().st_mtime_ns == stamp
    assert otb_result_path(folder, names[1]).is_file()
    assert again["synthetic"].scores == pytest.approx(first.scores)

    # the same numbers from the folder alone, without frames
    scored = score_folders([folder], lasher_data)
    assert scored["synthetic"].scores == pytest.approx(first.scores)


def _boxes(folder: Path, names) -> dict[str, np.ndarray]:
    return {name: read_otb_result(otb_result_path(folder, name)) for name in names}


@pytest.mark.slow
def test_results_of_another_checkpoint_or_setting_are_moved_aside_not_reused(tmp_path, lasher_data, caplog):
    """A retrained checkpoint at the same path (or other tracker settings under the same name)
    never reuses the old boxes: the old folder is moved aside, the log names what differs, and
    the new folder holds only the new model's boxes, equal to a fresh evaluation's."""
    names = lasher_data.list_sequences()
    path = write_checkpoint(tmp_path / "run" / "best.pt", seed=0)
    entries = [("synthetic", lasher_data)]
    evaluate_checkpoint(path, entries, tmp_path / "out", tracker_name="tiny", progress=False)
    folder = tmp_path / "out" / "tiny" / "synthetic"
    old = _boxes(folder, names)
    recorded = json.loads((folder / "provenance.json").read_text())
    assert recorded["dataset"] == "synthetic" and recorded["split"] == "test"
    assert recorded["root"] == str(Path(lasher_data.root).resolve())
    assert len(recorded["checkpoint_sha256"]) == 64

    write_checkpoint(path, seed=1)  # retrained in place
    otb_result_path(folder, names[2]).unlink()  # and a half-finished earlier evaluation
    with caplog.at_level("WARNING"):
        evaluate_checkpoint(path, entries, tmp_path / "out", tracker_name="tiny", progress=False)
    assert "checkpoint_sha256" in caplog.text and "moved them to" in caplog.text
    fresh_path = write_checkpoint(tmp_path / "fresh" / "best.pt", seed=1)
    evaluate_checkpoint(fresh_path, entries, tmp_path / "fresh-out", tracker_name="tiny", progress=False)
    new, fresh = _boxes(folder, names), _boxes(tmp_path / "fresh-out" / "tiny" / "synthetic", names)
    for name in names:
        np.testing.assert_array_equal(new[name], fresh[name])
    assert any(not np.array_equal(old[name], new[name]) for name in names)
    (stale,) = (tmp_path / "out" / "tiny").glob("synthetic.stale-*")  # nothing lost
    assert _boxes(stale, names[:2]).keys() == set(names[:2])

    caplog.clear()
    with caplog.at_level("WARNING"):  # same everything: reused, nothing said
        evaluate_checkpoint(path, entries, tmp_path / "out", tracker_name="tiny", progress=False)
    assert "moved" not in caplog.text
    with caplog.at_level("WARNING"):  # other settings under the same name
        evaluate_checkpoint(path, entries, tmp_path / "out", tracker_name="tiny", progress=False,
                            settings=TrackerSettings(hann_window=False))
    assert "tracker" in caplog.text and "hann_window" in caplog.text


def test_results_without_provenance_are_not_trusted(tmp_path, lasher_data, caplog):
    names = lasher_data.list_sequences()
    path = write_checkpoint(tmp_path / "tiny.pt")
    folder = tmp_path / "out" / "tiny" / "synthetic"
    for name in names:  # someone else's boxes, no record of what wrote them
        gt = lasher_data.load_groundtruth(name).boxes
        otb_result_path(folder, name).parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(otb_result_path(folder, name), gt, delimiter=",", fmt="%.2f")
    with caplog.at_level("WARNING"):
        result = evaluate_checkpoint(path, [("synthetic", lasher_data)], tmp_path / "out", progress=False)
    assert "no provenance.json" in caplog.text
    assert result["synthetic"].scores["SR"] < 0.99  # not the ground truth's perfect score


@pytest.mark.slow
def test_two_workers_match_one_worker(tmp_path, lasher_data):
    checkpoint = write_checkpoint(tmp_path / "tiny.pt")
    one = evaluate_checkpoint(checkpoint, [("synthetic", lasher_data)], tmp_path / "one",
                              workers=1, progress=False)
    two = evaluate_checkpoint(checkpoint, [("synthetic", lasher_data)], tmp_path / "two",
                              workers=2, progress=False)
    assert two["synthetic"].scores == pytest.approx(one["synthetic"].scores, abs=1e-6)
    for name in lasher_data.list_sequences():
        np.testing.assert_allclose(
            read_otb_result(otb_result_path(tmp_path / "two" / "tiny" / "synthetic", name)),
            read_otb_result(otb_result_path(tmp_path / "one" / "tiny" / "synthetic", name)),
            atol=1e-3)


@pytest.mark.slow
def test_vot_longterm_layout_for_depthtrack(tmp_path, depth_data):
    checkpoint = write_checkpoint(tmp_path / "depth.pt", aux="depth")
    results = evaluate_checkpoint(checkpoint, [("rgbd", depth_data)], tmp_path / "out",
                                  workers=1, progress=False)
    result = results["rgbd"]
    assert result.protocol == "depthtrack"
    check_scores(result, ["Pr", "Re", "F"])
    folder = tmp_path / "out" / "depth" / "rgbd"
    for name in depth_data.list_sequences():
        files = vot_longterm_files(folder, name)
        assert files.boxes.read_text().splitlines()[0] == "1"
        assert files.confidence.is_file() and files.time.is_file()
        read = read_vot_longterm_result(folder, name)
        assert len(read.boxes) == depth_data.load_groundtruth(name).n_frames
    assert score_folders([folder], depth_data)["rgbd"].scores == pytest.approx(result.scores)


def test_missing_result_file_is_named(tmp_path, lasher_data):
    folder = tmp_path / "peer"
    names = lasher_data.list_sequences()
    for name in names[1:]:
        gt = lasher_data.load_groundtruth(name)
        otb_result_path(folder, name).parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(otb_result_path(folder, name), gt.boxes, delimiter=",", fmt="%.2f")
    with pytest.raises(DataError, match=f"{names[0]}.txt"):
        score_folders([folder], lasher_data)


def test_published_results_with_a_tracker_prefix_and_corner_boxes(tmp_path, lasher_data):
    """Raw results as some papers publish them: ``MANet/MANet_<seq>.txt`` with x1,y1,x2,y2
    corners score exactly as the same boxes written ``<seq>.txt`` in x,y,w,h."""
    plain, published = tmp_path / "plain" / "MANet", tmp_path / "published" / "MANet"
    rng = np.random.default_rng(0)
    for name in lasher_data.list_sequences():
        boxes = lasher_data.load_groundtruth(name).boxes.astype(np.float64)
        boxes = boxes + rng.normal(0, 2, boxes.shape)  # not the ground truth itself
        for folder, rows, stem in ((plain, boxes, name),
                                   (published, np.c_[boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], f"MANet_{name}")):
            folder.mkdir(parents=True, exist_ok=True)
            np.savetxt(folder / f"{stem}.txt", rows, delimiter=",", fmt="%.4f")
    expected = score_folders([plain], lasher_data)["MANet"].scores
    got = score_folders([published], lasher_data, prefix="{tracker}_", box_format="ltrb")["MANet"].scores
    assert got == pytest.approx(expected, abs=1e-9)
    # inclusive corners (the rgbt package's default) end one pixel further in: x2 - x1 + 1
    inclusive = tmp_path / "inclusive" / "MANet"
    inclusive.mkdir(parents=True)
    for name in lasher_data.list_sequences():
        rows = np.loadtxt(published / f"MANet_{name}.txt", delimiter=",", ndmin=2)
        rows[:, 2:] -= 1
        np.savetxt(inclusive / f"MANet_{name}.txt", rows, delimiter=",", fmt="%.4f")
    got = score_folders([inclusive], lasher_data, prefix="MANet_", box_format="ltrb-inclusive")["MANet"].scores
    assert got == pytest.approx(expected, abs=1e-9)
    assert expected["SR"] < 0.99  # the noise counts: the comparison is not trivially 1 = 1
    with pytest.raises(DataError, match="MANet/" + lasher_data.list_sequences()[0] + ".txt"):
        score_folders([published], lasher_data)  # without the prefix: the file it expected is named


def test_resolve_targets_of_a_run_folder(tmp_path):
    run = tmp_path / "runs" / "tiny"
    write_checkpoint(run / "student" / "best.pt")
    write_checkpoint(run / "teacher" / "best.pt", kind="teacher")
    targets = resolve_targets(run)
    assert [t.name for t in targets] == ["tiny-student", "tiny-teacher"]
    assert resolve_targets(run / "student" / "best.pt")[0].name == "tiny-student"
    with pytest.raises(DataError, match="no checkpoint"):
        resolve_targets(tmp_path)


@pytest.mark.slow
def test_run_evaluate_writes_report_and_plots(tmp_path, lasher_data, monkeypatch):
    run = tmp_path / "runs" / "tiny"
    write_checkpoint(run / "student" / "best.pt")
    write_checkpoint(run / "teacher" / "best.pt", kind="teacher")
    entries = [("synthetic", lasher_data)]
    import mmtrack_kd.evaluation.runner as runner

    monkeypatch.setattr(runner, "resolve_datasets", lambda *args, **kwargs: entries)
    assert run_evaluate(run, ["synthetic"], out=tmp_path / "eval", workers=1, device="cpu") == 0
    assert (tmp_path / "eval" / "results" / "tiny-teacher" / "synthetic").is_dir()
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    trackers = report["datasets"]["synthetic"]
    assert set(trackers) == {"tiny-student", "tiny-teacher"}
    assert set(trackers["tiny-student"]["scores"]) == {"PR", "NPR", "SR"}
    pngs = sorted(p.name for p in (tmp_path / "eval" / "plots").glob("*.png"))
    assert "synthetic_precision.png" in pngs and "synthetic_success.png" in pngs
    for png in pngs:
        assert (tmp_path / "eval" / "plots" / png).read_bytes()[:4] == b"\x89PNG"


def test_resolve_datasets_uses_root_and_defaults(tmp_path, lasher_data):
    with pytest.raises(DataError, match="no dataset"):
        resolve_datasets([], None)
    (name, plugin), = resolve_datasets(["lasher"], None, root=lasher_data.root)
    assert name == "lasher" and plugin.options.split == "test"
    assert plugin.list_sequences() == lasher_data.list_sequences()


def test_datasets_from_the_run_recipe(tmp_path, lasher_data):
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    options = ", ".join(f"{k}: {v}" for k, v in TINY_DATA.items())
    (run / "recipe.yaml").write_text(
        "modality: thermal\nevaluate:\n  datasets:\n"
        f"    - {{name: synthetic, layout: lasher, root: {lasher_data.root}, {options}}}\n"
    )
    (name, plugin), = resolve_datasets([], run)  # every recipe entry; split defaults to test
    assert name == "synthetic" and plugin.options.split == "test"
    assert plugin.list_sequences() == lasher_data.list_sequences()
    (name, plugin), = resolve_datasets(["synthetic"], run / "student" / "best.pt")
    assert plugin.options.n_test == TINY_DATA["n_test"]


@pytest.mark.slow
def test_run_evaluate_takes_workers_and_hann_window_from_the_run_recipe(tmp_path, lasher_data, monkeypatch):
    """The run's ``evaluate.workers`` and ``evaluate.hann_window`` are used, and a run with
    non-default inference settings gets its own results folder (no stale resumed boxes)."""
    run = tmp_path / "runs" / "tiny"
    write_checkpoint(run / "student" / "best.pt")
    (run / "recipe.yaml").write_text(
        "modality: {name: thermal}\n"
        "data: {train: [{name: synthetic, layout: lasher, root: x}]}\n"
        "evaluate: {workers: 3, hann_window: false}\n"
    )
    import mmtrack_kd.evaluation.runner as runner

    seen = {}

    def fake_evaluate(checkpoint, entries, out_dir, workers, device, name, **kwargs):
        seen.update(workers=workers, name=name, **kwargs)
        return real_evaluate(checkpoint, entries, out_dir, 1, device, name, **kwargs)

    real_evaluate = runner.evaluate_checkpoint
    monkeypatch.setattr(runner, "resolve_datasets", lambda *a, **k: [("synthetic", lasher_data)])
    monkeypatch.setattr(runner, "evaluate_checkpoint", fake_evaluate)
    assert run_evaluate(run, ["synthetic"], out=tmp_path / "eval", device="cpu", plots=False) == 0
    assert seen == {"workers": 3, "name": "tiny-student-nohann", "settings": TrackerSettings(hann_window=False)}
    assert (tmp_path / "eval" / "results" / "tiny-student-nohann" / "synthetic").is_dir()
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert set(report["datasets"]["synthetic"]) == {"tiny-student-nohann"}


@pytest.mark.slow
def test_compiled_trackers_in_workers_write_the_eager_boxes(tmp_path, lasher_data):
    """``evaluate --compile``: each spawned worker compiles its tracker's forward (the ``eager``
    backend here, to stay quick); the result files are the eager tracker's, in the same folder."""
    checkpoint = write_checkpoint(tmp_path / "tiny.pt")
    evaluate_checkpoint(checkpoint, [("synthetic", lasher_data)], tmp_path / "eager", workers=1, progress=False)
    evaluate_checkpoint(checkpoint, [("synthetic", lasher_data)], tmp_path / "compiled", workers=2,
                        progress=False, settings=TrackerSettings(compile="eager"))
    for name in lasher_data.list_sequences():
        np.testing.assert_allclose(
            read_otb_result(otb_result_path(tmp_path / "compiled" / "tiny" / "synthetic", name)),
            read_otb_result(otb_result_path(tmp_path / "eager" / "tiny" / "synthetic", name)),
            atol=1e-3)
    # the backend does reach the tracker: one that does not exist is refused
    with pytest.raises(Exception, match="no_such_backend"):
        evaluate_checkpoint(checkpoint, [("synthetic", lasher_data)], tmp_path / "bad", workers=1,
                            progress=False, settings=TrackerSettings(compile="no_such_backend"))


def test_split_and_dataset_options_from_the_command_line(tmp_path, lasher_data):
    names = lasher_data.list_sequences()
    (name, plugin), = resolve_datasets(["LasHeR"], None, root=lasher_data.root, split="test",
                                       options={"sequences": names[:1]})
    assert name == "lasher" and plugin.options.split == "test"  # the official spelling
    assert plugin.list_sequences() == names[:1]
    (_, plugin), = resolve_datasets(["lasher"], None, root=lasher_data.root, split="train")
    assert plugin.options.split == "train"
    from mmtrack_kd.errors import RecipeError

    with pytest.raises(RecipeError, match="sequencs"):
        resolve_datasets(["lasher"], None, root=lasher_data.root, options={"sequencs": ["a"]})


def test_no_sequences_names_dataset_split_and_root(tmp_path, capsys):
    from mmtrack_kd.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "peer").mkdir()
    assert main(["evaluate", "--results", str(tmp_path / "peer"), "--dataset", "folder", "--split", "all",
                 "--root", str(empty), "--no-plots", "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert "dataset folder" in err and "split 'all'" in err and str(empty) in err


def test_one_bad_results_folder_does_not_abort_the_others(tmp_path, lasher_data, capsys):
    """Every folder that can be scored is reported; every problem of the others is listed (the
    command line's ``--dataset LasHeR`` and ``--split`` included)."""
    from mmtrack_kd.cli import main

    names = lasher_data.list_sequences()
    good, partial, absent = tmp_path / "good", tmp_path / "partial", tmp_path / "absent"
    for folder, sequences in ((good, names), (partial, names[2:])):
        for name in sequences:
            otb_result_path(folder, name).parent.mkdir(parents=True, exist_ok=True)
            np.savetxt(otb_result_path(folder, name), lasher_data.load_groundtruth(name).boxes,
                       delimiter=",", fmt="%.2f")
    out = tmp_path / "eval"
    status = main(["evaluate", "--results", str(good), str(partial), str(absent), "--dataset",
                   "LasHeR", "--split", "test", "--root", str(lasher_data.root), "--no-plots",
                   "--out", str(out)])
    assert status == 2
    err = capsys.readouterr().err
    # both missing files of the partial folder, not only the first, and the absent folder
    assert f"{names[0]}.txt" in err and f"{names[1]}.txt" in err and "absent" in err
    report = json.loads((out / "report.json").read_text())
    assert list(report["datasets"]["lasher"]) == ["good"]


@pytest.mark.slow
def test_tracking_progress_goes_into_the_log_off_a_terminal(tmp_path, lasher_data, caplog):
    import logging

    checkpoint = write_checkpoint(tmp_path / "ckpt" / "tiny.pt")
    with caplog.at_level(logging.INFO, logger="mmtrack_kd.evaluation.runner"):
        evaluate_checkpoint(checkpoint, [("synthetic", lasher_data)], tmp_path / "out",
                            tracker_name="tiny", progress=True)
    lines = [r.getMessage() for r in caplog.records if "tracked sequence" in r.getMessage()]
    assert lines and lines[-1].startswith("tiny: tracked sequence 3 of 3")


def test_benchmark_plugins_travel_to_worker_processes(lasher_data):
    """``evaluate --workers N`` pickles each dataset plugin for its workers: the real layouts'
    plugins (a frame-folder cache inside) must survive the trip and read the same sequences."""
    import pickle

    (name, plugin), = resolve_datasets(["lasher"], None, root=lasher_data.root)
    plugin.load_sequence(plugin.list_sequences()[0])  # fills the cache
    copy = pickle.loads(pickle.dumps(plugin))
    assert copy.list_sequences() == plugin.list_sequences()
    first = plugin.list_sequences()[0]
    assert copy.load_sequence(first).frames == plugin.load_sequence(first).frames


def test_a_bad_checkpoint_with_several_workers_is_one_message(tmp_path, lasher_data):
    """Read before any worker starts: a failing worker initialiser would break the pool."""
    from mmtrack_kd.errors import CheckpointError

    path = write_checkpoint(tmp_path / "nan.pt")
    state = RunCheckpoint.read(path)
    state.model["fusion.reduce.weight"][0, 0] = float("nan")
    state.save(path)
    with pytest.raises(CheckpointError, match=r"nan.pt: 1 of \d+ tensors hold NaN or inf.*fusion.reduce.weight"):
        evaluate_checkpoint(path, [("synthetic", lasher_data)], tmp_path / "out", workers=2, progress=False)
