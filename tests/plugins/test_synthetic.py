"""The synthetic dataset: determinism, the real layouts read back through the real plugins,
generation guards, the ``synth`` command and the preview sheet."""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmtrack_kd.data import EventStore
from mmtrack_kd.data.loader import load_sequences
from mmtrack_kd.errors import DataError, PluginError
from mmtrack_kd.plugins import load_registry

from plugins.synthetic import generate as generate_module
from plugins.synthetic.command import synth
from plugins.synthetic.generate import MANIFEST, TRUTH_FOLDER, _run_in_processes, load_truth
from plugins.synthetic.options import ContentOptions, SyntheticOptions, generation_options
from plugins.synthetic.preview import write_preview

LAYOUTS = ("lasher", "depthtrack", "visevent")
AUX = {"lasher": "thermal", "depthtrack": "depth", "visevent": "event"}
# Tiny but complete: both splits, a few frames, small images.
TINY = dict(n_train=2, n_test=1, frames=16, width=96, height=72, workers=1)


@pytest.fixture(scope="module")
def registry():
    """The real dataset plugins, modality adapters and the synthetic plugin, registered
    directly (the same modules the entry points name)."""
    modules = [(name, importlib.import_module(f"plugins.{name}")) for name in (*LAYOUTS, "synthetic")]
    modules += [
        (name, importlib.import_module(f"modality_adapters.{name}"))
        for name in ("rgb", "thermal", "depth", "event")
    ]
    return load_registry(only=[], extra_plugins=modules)


def make(registry, root: Path, layout: str, split: str = "train", **options):
    cls = registry.dataset("synthetic")
    return cls(cls.Options(root=root, layout=layout, split=split, **{**TINY, **options}), registry=registry)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_registered_through_its_hook(registry):
    synthetic = registry.dataset("synthetic")
    assert synthetic.name == "synthetic"
    assert registry.owner("dataset", "synthetic").name == "synthetic"
    assert set(synthetic.Options.model_fields) >= {"layout", "root", "split", "n_train", "seed", "content"}


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
def test_same_seed_same_bytes_for_any_number_of_workers(registry, tmp_path, layout):
    one = make(registry, tmp_path / "one", layout, workers=1).root
    two = make(registry, tmp_path / "two", layout, workers=2).root
    digest = tree_digest(one)
    assert digest == tree_digest(two)
    assert len(digest) > 3 * TINY["frames"]  # frames of both streams of several sequences
    other = make(registry, tmp_path / "other", layout, seed=1).root
    assert tree_digest(other) != digest


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_reads_back_through_the_real_plugin(registry, tmp_path, layout):
    root = tmp_path / layout
    for split, count in (("train", TINY["n_train"]), ("test", TINY["n_test"])):
        dataset = make(registry, root, layout, split)
        real_cls = registry.dataset(layout)
        assert dataset.modalities == real_cls.modalities == ("rgb", AUX[layout])
        assert dataset.protocol == real_cls.protocol
        # the real vocabulary first, then what the generator adds
        assert dataset.attribute_names[:len(real_cls.attribute_names)] == real_cls.attribute_names
        # before any instance exists, the class methods give the same values for the options
        options = dataset.options
        assert (type(dataset).modalities_for(options), type(dataset).protocol_for(options),
                type(dataset).attribute_names_for(options)) == (
            dataset.modalities, dataset.protocol, dataset.attribute_names)
        real = real_cls(real_cls.Options(root=root, split=split))
        names = dataset.list_sequences()
        assert names == real.list_sequences() == [f"{split}_{i:04d}" for i in range(count)]
        rgb = registry.modality("rgb")()
        aux = registry.modality(AUX[layout])()
        for name in names:
            sequence = dataset.load_sequence(name)
            original = real.load_sequence(name)
            truth = dataset.truth(name)
            assert sequence.dataset == "synthetic" and original.dataset == layout
            assert sequence.n_frames == TINY["frames"]
            assert sequence.streams == ("rgb", AUX[layout])
            np.testing.assert_array_equal(sequence.visible, truth["visible"])
            target = np.array(next(o for o in truth["objects"] if o["role"] == "target")["boxes"])
            visible = sequence.visible
            # LasHeR writes integer boxes; the others two decimals.
            np.testing.assert_allclose(sequence.boxes[visible], target[visible], atol=1.0 if layout == "lasher" else 0.01)
            assert {k for k, v in sequence.attributes.items() if v} == {
                k for k, v in truth["attributes"].items() if v
            }
            assert set(sequence.attributes) <= set(dataset.attribute_names)
            groundtruth = dataset.load_groundtruth(name)
            np.testing.assert_array_equal(groundtruth.boxes, sequence.boxes)
            assert groundtruth.dataset == "synthetic" and not groundtruth.frames
            for index in (0, sequence.n_frames - 1):
                assert rgb.read(sequence, index).shape == (TINY["height"], TINY["width"], 3)
                assert aux.read(sequence, index).shape[:2] == (TINY["height"], TINY["width"])
            if layout == "visevent":

                assert sequence.raw["event"].name == "events.h5"
                with EventStore(sequence.raw["event"]) as store:
                    assert store.n_frames == sequence.n_frames
                    assert (store.width, store.height) == (TINY["width"], TINY["height"])
                    assert sum(len(store.frame(k)) for k in range(store.n_frames)) > 0
                np.testing.assert_array_equal(sequence.frame_times, store.frame_times)
                voxel = registry.modality("event")(registry.modality("event").Options(representation="voxel", bins=3))
                assert voxel.read(sequence, 5).shape == (TINY["height"], TINY["width"], 3)


def test_files_are_in_the_real_layouts(registry, tmp_path):
    lasher = make(registry, tmp_path / "l", "lasher").root
    sequence = lasher / "trainingset" / "train_0000"
    assert (lasher / "trainingsetList.txt").read_text().split() == ["train_0000", "train_0001"]
    assert (lasher / "testingsetList.txt").read_text().split() == ["test_0000"]
    assert sorted(p.name for p in (sequence / "visible").iterdir())[0] == "v000001.jpg"
    assert sorted(p.name for p in (sequence / "infrared").iterdir())[0] == "i000001.jpg"
    rows = (sequence / "visible.txt").read_text().splitlines()
    assert len(rows) == TINY["frames"] and all(v.lstrip("-").isdigit() for v in rows[0].split(","))
    assert (sequence / "infrared.txt").read_text() == (sequence / "init.txt").read_text() == "\n".join(rows) + "\n"
    flags = (lasher / "AttriSeqsTxt" / "train_0000.txt").read_text().strip().split(",")
    assert len(flags) == 19 and set(flags) <= {"0", "1"}

    depthtrack = make(registry, tmp_path / "d", "depthtrack").root
    sequence = depthtrack / "train" / "train_0000"
    assert (depthtrack / "train" / "list.txt").read_text().split() == ["train_0000", "train_0001"]
    depth = cv2.imread(str(sequence / "depth" / "00000001.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.ndim == 2 and 500 < np.median(depth) < 10000
    assert (sequence / "color" / "00000001.jpg").is_file()
    tags = sorted(p.name for p in sequence.glob("*.tag"))
    assert "full-occlusion.tag" in tags and "depth-camouflage.tag" in tags
    assert len((sequence / "dark-scene.tag").read_text().split()) == TINY["frames"]

    visevent = make(registry, tmp_path / "v", "visevent").root
    sequence = visevent / "train_subset" / "train_0000"
    assert (visevent / "trainlist.txt").read_text().split() == ["train_0000", "train_0001"]
    assert (sequence / "vis_imgs" / "frame0000.bmp").is_file()
    events = cv2.imread(str(sequence / "event_imgs" / "frame0003.bmp"))
    assert events.shape == (TINY["height"], TINY["width"], 3) and (events == 255).all(axis=2).mean() > 0.5
    assert len((sequence / "absent_label.txt").read_text().split()) == TINY["frames"]


def test_options_changed_since_generation_are_refused_or_regenerated(registry, tmp_path):
    root = tmp_path / "data"
    first = make(registry, root, "lasher")
    assert first.report.generated
    again = make(registry, root, "lasher", split="test", workers=2)  # workers do not matter
    assert not again.report.generated
    with pytest.raises(DataError, match=r"frames: 16 -> 20.*on_mismatch: regenerate"):
        make(registry, root, "lasher", frames=20)
    regenerated = make(registry, root, "lasher", frames=20, on_mismatch="regenerate")
    assert regenerated.report.generated
    assert regenerated.load_sequence("train_0000").n_frames == 20
    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["generation"]["frames"] == 20 and manifest["dataset"] == "lasher"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".data.") and p.is_dir()]


def test_root_states(registry, tmp_path, monkeypatch, caplog):
    empty = tmp_path / "empty"
    empty.mkdir()
    with caplog.at_level(logging.INFO):
        assert make(registry, empty, "lasher").report.generated  # an empty folder is filled
    # first-use generation is a normal event: INFO, which logs show off a terminal too
    assert any("synthetic: generating" in r.getMessage() and str(empty) in r.getMessage()
               and r.levelno == logging.INFO for r in caplog.records)

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a generated synthetic root"):
        make(registry, foreign, "lasher")
    assert (foreign / "notes.txt").read_text() == "mine"

    with pytest.raises(DataError, match="generate` is off"):
        make(registry, tmp_path / "missing", "lasher", generate=False)

    cls = registry.dataset("synthetic")
    monkeypatch.delenv("MMTRACK_KD_SYNTHETIC_ROOT", raising=False)
    with pytest.raises(DataError, match="MMTRACK_KD_SYNTHETIC_ROOT"):
        cls(cls.Options(layout="lasher"), registry=registry)
    monkeypatch.setenv("MMTRACK_KD_SYNTHETIC_ROOT", str(tmp_path / "from-env"))
    assert cls(cls.Options(layout="lasher", **TINY), registry=registry).root == tmp_path / "from-env"


def test_an_interrupted_generation_leaves_no_root(registry, tmp_path, monkeypatch):
    real = generate_module.generate_sequence

    def failing(root, layout, split, index, generation):
        if index == 1:
            raise RuntimeError("disk full")
        return real(root, layout, split, index, generation)

    monkeypatch.setattr(generate_module, "generate_sequence", failing)
    root = tmp_path / "data"
    with pytest.raises(RuntimeError, match="disk full"):
        make(registry, root, "lasher")
    assert not root.exists()
    assert [p.name for p in tmp_path.iterdir()] == [".data.lock"]
    monkeypatch.setattr(generate_module, "generate_sequence", real)
    assert make(registry, root, "lasher").report.generated


@pytest.mark.slow
def test_synth_command_and_preview(registry, tmp_path, monkeypatch):
    lines = synth(tmp_path / "data", layout="visevent", sequences=2, test_sequences=1, frames=12, width=96, height=72, workers=1)
    assert "wrote 3 visevent sequences" in lines[0]
    assert "name: synthetic" in lines[1] and "frames: 12" in lines[1]
    assert synth(tmp_path / "data", layout="visevent", sequences=2, test_sequences=1, frames=12, width=96, height=72)[0].endswith("is up to date")
    with pytest.raises(DataError, match="other options"):
        synth(tmp_path / "data", layout="visevent", sequences=3, frames=12, width=96, height=72)
    assert "wrote 6" in synth(tmp_path / "data", layout="visevent", sequences=3, frames=12, width=96, height=72, force=True)[0]

    out = write_preview(tmp_path / "sheet.png", frames=24, width=96, height=72, sequences=2, registry=registry)
    sheet = cv2.imread(str(out))
    assert synth(preview=True, out=tmp_path / "sheet2.png", frames=24, width=96, height=72, registry=registry) == [
        f"wrote the synthetic-data contact sheet {tmp_path / 'sheet2.png'}"
    ]
    assert (tmp_path / "sheet2.png").stat().st_size > 0
    # Three layouts, each a title strip and two rows of six tiles.
    assert sheet.shape == (3 * (22 + 2 * 72), 6 * 96, 3)


def test_plugin_instances_pickle_for_worker_processes(registry, tmp_path):
    dataset = make(registry, tmp_path / "data", "visevent")
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy.root == dataset.root and copy.options == dataset.options
    assert copy.modalities == ("rgb", "event") and copy._registry is None
    copy._registry = registry  # the installed plugins are not entry points in every test run
    assert copy.load_sequence("train_0001").n_frames == TINY["frames"]


def test_truth_files_and_manifest(registry, tmp_path):
    dataset = make(registry, tmp_path / "data", "depthtrack", frames=40)
    truth = load_truth(dataset.root, "train", "train_0000")
    assert truth["aux"] == "depth" and len(truth["dominant"]) == 40
    assert (dataset.root / TRUTH_FOLDER / "test" / "test_0000.json").is_file()
    manifest = json.loads((dataset.root / MANIFEST).read_text())
    assert manifest["splits"] == {"train": ["train_0000", "train_0001"], "test": ["test_0000"]}
    assert manifest["generation"]["content"] == ContentOptions().model_dump(mode="json")


def test_content_options_validate():
    with pytest.raises(ValueError, match="distractors"):
        ContentOptions(distractors=(3, 1))
    with pytest.raises(ValueError):
        SyntheticOptions(layout="rgbt234")
    with pytest.raises(ValueError):
        SyntheticOptions(content={"clutter": 1.0, "colour": "red"})


def test_a_failing_worker_process_is_reported(tmp_path):
    generation = generation_options(SyntheticOptions(**TINY))
    with pytest.raises(DataError, match="no-such-layout data in .*a generation worker failed(.|\n)*KeyError"):
        _run_in_processes(tmp_path, "no-such-layout", [("train", 0), ("train", 1)], generation, 2)


def test_a_missing_layout_plugin_is_named_before_anything_is_generated(tmp_path):
    only_synthetic = load_registry(only=[], extra_plugins=[("synthetic", importlib.import_module("plugins.synthetic"))])
    cls = only_synthetic.dataset("synthetic")
    with pytest.raises(PluginError, match="unknown dataset 'depthtrack'"):
        cls(cls.Options(root=tmp_path / "data", layout="depthtrack", **TINY), registry=only_synthetic)
    assert not (tmp_path / "data").exists()


def test_checks_read_the_configured_layout_not_the_class(registry, tmp_path):
    """The class describes the default layout (lasher); a depthtrack instance carries depth and
    is scored by DepthTrack's protocol, and the loader's stream check says so."""
    dataset = make(registry, tmp_path / "d", "depthtrack")
    cls = type(dataset)
    assert (cls.modalities, cls.protocol) == (("rgb", "thermal"), "lasher")
    assert (dataset.modalities, dataset.protocol) == (("rgb", "depth"), "depthtrack")
    assert load_sequences(dataset, ["depth"])[0] == "synthetic"
    with pytest.raises(DataError, match="dataset synthetic carries rgb, depth; it has no thermal stream"):
        load_sequences(dataset, ["thermal"])
