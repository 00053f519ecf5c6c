"""What the synthetic sequences show: the ground-truth box is where the target is drawn, the
modality spells hide the target in exactly one stream, and the attributes follow the spells."""

from __future__ import annotations

import copy
import importlib

import numpy as np
import pytest

from mmtrack_kd.plugins import load_registry

from plugins.synthetic.generate import make_renderer
from plugins.synthetic.options import ContentOptions
from plugins.synthetic.scene import FLAT_TARGET_RGB, ScenePlan, plan_sequence

LAYOUTS = ("lasher", "depthtrack", "visevent")
AUX = {"lasher": "thermal", "depthtrack": "depth", "visevent": "event"}


@pytest.fixture(scope="module")
def registry():
    modules = [(name, importlib.import_module(f"plugins.{name}")) for name in (*LAYOUTS, "synthetic")]
    modules += [
        (name, importlib.import_module(f"modality_adapters.{name}"))
        for name in ("rgb", "thermal", "depth", "event")
    ]
    return load_registry(only=[], extra_plugins=modules)


def make(registry, root, layout, split="train", **options):
    cls = registry.dataset("synthetic")
    options = {"n_train": 3, "n_test": 0, "frames": 40, "width": 160, "height": 120, "workers": 1, **options}
    return cls(cls.Options(root=root, layout=layout, split=split, **options), registry=registry)


@pytest.mark.parametrize("layout", ["lasher", "visevent"])
def test_ground_truth_box_is_where_the_target_is_drawn(registry, tmp_path, layout):
    """A flat magenta target on a plain background, read from the written frames through the
    real plugin and the RGB adapter: the magenta pixels' bounding box is the ground truth."""
    content = {
        "target_texture": "flat",
        "distractors": (0, 0),
        "clutter": 0.0,
        "occlusion": 0.0,
        "spells_per_100": 0.0,
        "noise": 0.0,
        "target_size": (0.15, 0.3),
    }
    dataset = make(registry, tmp_path / layout, layout, content=content)
    rgb = registry.modality("rgb")()
    target = np.array(FLAT_TARGET_RGB) / 255.0
    checked = 0
    for name in dataset.list_sequences():
        sequence = dataset.load_sequence(name)
        for k in range(0, sequence.n_frames, 3):
            frame = rgb.read(sequence, k)
            # Pixels at least half covered by the target (its edges are antialiased).
            mask = np.abs(frame - target).max(axis=2) < 0.3
            ys, xs = np.nonzero(mask)
            drawn = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)
            x, y, w, h = sequence.boxes[k]
            truth = np.array([x, y, x + w, y + h])
            # JPEG (LasHeR) blurs edges by a pixel; integer boxes round them: 1.5 px; BMP: 1 px.
            assert np.abs(drawn - truth).max() <= (1.5 if layout == "lasher" else 1.0), (name, k, drawn, truth)
            checked += 1
    assert checked >= 30


# --------------------------------------------------------------------------- spells


def _without_target(plan: ScenePlan) -> ScenePlan:
    """The same plan with the target transparent (everything else, noise included, equal)."""
    clone = copy.copy(plan)
    clone.tracks = list(plan.tracks)
    target = copy.copy(plan.target)
    target.texture = plan.target.texture.copy()
    target.texture[..., 4] = 0.0
    clone.tracks[plan.target_index] = target
    return clone


def _stream_values(frame, aux: str) -> tuple[np.ndarray, np.ndarray]:
    """RGB in [0, 1] (3 channels) and the auxiliary stream in its natural unit: thermal
    [0, 1], depth metres, events 1 where a pixel has events."""
    rgb = frame.rgb.astype(np.float32) / 255.0
    if aux == "thermal":
        other = frame.aux.astype(np.float32) / 255.0
    elif aux == "depth":
        other = frame.aux.astype(np.float32) / 1000.0
    else:
        other = (frame.aux != 255).any(axis=2).astype(np.float32)
    return rgb, other


def _target_contrast(plan: ScenePlan, content: ContentOptions):
    """Per frame, how much the target changes each stream: mean |with - without target| over
    its box (RGB over the three channels). Yields ``(k, rgb contrast, aux contrast)`` for
    frames where no distractor or occluder overlaps the target."""
    with_target = make_renderer(plan, content)
    without = make_renderer(_without_target(plan), content)
    h, w = plan.height, plan.width
    for k in range(plan.n_frames):
        a, b = with_target.frame(k), without.frame(k)
        x, y, bw, bh = plan.target.boxes[k]
        # Events of frame k come from the change since frame k - 1: check both frames.
        overlapped = any(
            i != plan.target_index
            and t.boxes[j, 0] < x + bw and x < t.boxes[j, 0] + t.boxes[j, 2]
            and t.boxes[j, 1] < y + bh and y < t.boxes[j, 1] + t.boxes[j, 3]
            for i, t in enumerate(plan.tracks)
            for j in (k - 1, k)
        )
        if overlapped or k == 0:  # frame 0 has no events yet
            continue
        region = (slice(max(int(y), 0), min(int(np.ceil(y + bh)), h)), slice(max(int(x), 0), min(int(np.ceil(x + bw)), w)))
        (rgb_a, aux_a), (rgb_b, aux_b) = _stream_values(a, plan.aux), _stream_values(b, plan.aux)
        yield k, float(np.abs(rgb_a - rgb_b)[region].mean()), float(np.abs(aux_a - aux_b)[region].mean())


#: Least contrast of a visible target in the auxiliary stream: thermal (fraction of full
#: scale), depth (metres: the target's own relief when it stands on the floor) and events
#: (share of the box's pixels that fire).
AUX_VISIBLE = {"lasher": 0.1, "depthtrack": 0.1, "visevent": 0.05}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_spells_hide_the_target_in_exactly_one_stream(layout):
    """RGB spells (dark, glare, blur): the target's contrast in RGB is near zero while the
    auxiliary stream shows it clearly; auxiliary spells (thermal crossover, target at the
    background's depth, a still target without events): the reverse."""
    content = ContentOptions(spells_per_100=3.0)
    seen: dict[str, int] = {}
    for index in range(4):
        plan = plan_sequence(f"s{index}", 0, "train", index, layout, 60, 160, 120, content)
        for k, rgb, aux in _target_contrast(plan, content):
            if plan.rgb_visibility[k] == 0:  # inside an RGB spell, at full strength
                kind = plan.rgb_effect[k][0]
                # Darkness and glare leave nothing of the target; a blur leaves a faint smear.
                assert rgb < (0.06 if kind == "blur" else 0.02), (index, k, kind, rgb)
                assert aux > AUX_VISIBLE[layout], (index, k, kind, aux)
            elif plan.aux_visibility[k] == 0:  # inside an auxiliary spell
                kind = "aux"
                assert aux < 0.02, (index, k, aux)
                assert rgb > 0.04, (index, k, rgb)
            else:
                continue
            seen[kind] = seen.get(kind, 0) + 1
    assert seen.get("aux", 0) >= 5, seen
    assert sum(seen.get(kind, 0) for kind in ("dark", "glare", "blur")) >= 5, seen


def test_written_frames_are_the_rendered_frames(registry, tmp_path):
    """What the contrast test measures in memory is what is on disk: BMP exactly, JPEG within
    its compression error."""
    for layout, tolerance in (("visevent", 0.0), ("lasher", 6.0)):
        dataset = make(registry, tmp_path / layout, layout, n_train=1, frames=12)
        sequence = dataset.load_sequence("train_0000")
        content = ContentOptions()
        plan = plan_sequence("train_0000", 0, "train", 0, layout, 12, 160, 120, content)
        renderer = make_renderer(plan, content)
        rgb = registry.modality("rgb")()
        for k in range(12):
            frame = renderer.frame(k)
            on_disk = np.rint(rgb.read(sequence, k) * 255.0)
            assert np.abs(on_disk - frame.rgb).mean() <= tolerance, (layout, k)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_attributes_follow_the_spells_and_the_dominant_stream_switches(registry, tmp_path, layout):
    dataset = make(registry, tmp_path / layout, layout, n_train=6, frames=100, width=128, height=96)
    switches = 0
    spell_frames = 0
    for name in dataset.list_sequences():
        sequence = dataset.load_sequence(name)
        truth = dataset.truth(name)
        kinds = {spell["kind"] for spell in truth["spells"]}
        flags = sequence.attributes
        aux_spell = any(spell["stream"] == "aux" for spell in truth["spells"])
        if layout == "lasher":
            assert len(flags) == 19
            assert flags["LI"] == ("dark" in kinds)
            assert flags["HI"] == ("glare" in kinds)
            assert flags["MB"] == ("blur" in kinds)
            assert flags["TC"] == aux_spell == ("crossover" in kinds)
            assert flags["NO"] != (flags["PO"] or flags["TO"])
        elif layout == "depthtrack":
            folder = sequence.path
            tag = lambda name: np.loadtxt(folder / f"{name}.tag", dtype=int).astype(bool)  # noqa: E731
            dark = np.zeros(sequence.n_frames, dtype=bool)
            camouflage = np.zeros(sequence.n_frames, dtype=bool)
            for spell in truth["spells"]:
                if spell["kind"] == "dark":
                    dark[spell["start"] : spell["end"]] = True
                elif spell["stream"] == "aux":
                    camouflage[spell["start"] : spell["end"]] = True
            np.testing.assert_array_equal(tag("dark-scene"), dark)
            np.testing.assert_array_equal(tag("depth-camouflage"), camouflage)
            assert flags["dark-scene"] == ("dark" in kinds)
            assert flags["full-occlusion"] == (not all(truth["visible"]))
        else:
            assert flags.get("NMO", False) == ("still" in kinds)
            assert flags.get("LI", False) == ("dark" in kinds)
            assert flags.get("MB", False) == ("blur" in kinds)
        dominant = truth["dominant"]
        switches += "rgb" in dominant and "aux" in dominant
        spell_frames += sum(d in ("rgb", "aux") for d in dominant)
        # Frames where one stream alone shows the target are exactly the spells' frames.
        assert dominant[:5] == ["both"] * 5  # the initialisation frames are clean
    assert switches >= 3  # most sequences switch their dominant stream
    share = spell_frames / (6 * 100)
    assert 0.1 < share < 0.6, share
