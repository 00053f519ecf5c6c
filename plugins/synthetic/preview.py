"""The contact sheet of ``mmtrack-kd synth --preview``: a few frames of every stream of each
layout, read back through the real dataset plugins and rendered by the modality adapters.

For each layout a few sequences are generated in a temporary folder (same seed, size and frame
count as asked, so they are the first sequences of a real root with those options), the one
that best shows the spells is picked, and six frames are laid out: the first frame, the middle
of RGB spells, of the auxiliary spell, the deepest occlusion and the last frame. Each tile is
labelled with its frame and condition and carries the ground-truth box (green; red where the
target is marked absent).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mmtrack_kd.data import installed_plugins
from plugins.synthetic.options import SyntheticOptions

LAYOUTS = ("lasher", "depthtrack", "visevent")
TITLES = {"lasher": "LasHeR layout (RGB-T)", "depthtrack": "DepthTrack layout (RGB-D)", "visevent": "VisEvent layout (RGB-E)"}
AUX_SPELL_LABEL = {"crossover": "thermal crossover", "depth_match": "target at background depth", "still": "target still: no events"}
#: RGB spell kind each layout's preview prefers to show, so the sheet shows all three.
PREFERRED = {"lasher": "dark", "depthtrack": "glare", "visevent": "blur"}
COLUMNS = 6
CANDIDATES = 6


def _pick_sequence(dataset: Any, names: list[str], prefer: str, taken: set[str]) -> tuple[str, dict[str, Any]]:
    """The sequence with both kinds of spell, preferring one with a ``prefer`` RGB spell and
    one that another layout's block does not show already (``taken``)."""
    best, best_score = names[0], -1.0
    truths = {}
    for name in names:
        truth = dataset.truth(name)
        truths[name] = truth
        kinds = {s["kind"] for s in truth["spells"]}
        streams = {s["stream"] for s in truth["spells"]}
        score = (
            2.0 * (len(streams) == 2)
            + 1.5 * (prefer in kinds)
            + 1.0 * any(o > 0.3 for o in truth["occlusion"])
            - 3.0 * (name in taken)
        )
        if score > best_score:
            best, best_score = name, score
    return best, truths[best]


def _pick_frames(truth: dict[str, Any]) -> list[int]:
    n = truth["frames"]
    frames = [0]
    for spell in sorted(truth["spells"], key=lambda s: (s["stream"] != "rgb", s["start"])):
        frames.append((spell["start"] + spell["end"]) // 2)
    occlusion = np.asarray(truth["occlusion"])
    if occlusion.max() > 0.3:
        frames.append(int(occlusion.argmax()))
    frames.append(n - 1)
    picked = list(dict.fromkeys(frames))[: COLUMNS - 1] + [n - 1]
    picked = sorted(dict.fromkeys(picked))
    # Fill up with evenly spaced frames.
    for k in np.linspace(0, n - 1, COLUMNS + 2).astype(int)[1:-1]:
        if len(picked) >= COLUMNS:
            break
        if all(abs(int(k) - p) > 2 for p in picked):
            picked.append(int(k))
    return sorted(picked)[:COLUMNS]


def _condition(truth: dict[str, Any], k: int) -> tuple[str, str]:
    """Labels of frame ``k``'s RGB and auxiliary condition."""
    rgb, aux = "", ""
    for spell in truth["spells"]:
        if spell["start"] <= k < spell["end"]:
            if spell["stream"] == "rgb":
                rgb = spell["kind"]
            else:
                aux = AUX_SPELL_LABEL.get(spell["kind"], spell["kind"])
    if truth["occlusion"][k] > 0.05:
        occluded = f"occluded {truth['occlusion'][k]:.0%}"
        rgb = f"{rgb}, {occluded}" if rgb else occluded
        aux = f"{aux}, {occluded}" if aux else occluded
    return rgb or "clear", aux or "clear"


def _tile(image: np.ndarray, box: np.ndarray, visible: bool, label: str) -> np.ndarray:
    """An RGB tile with the box and a label strip, returned in BGR for OpenCV."""
    tile = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    if np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0:
        x, y, w, h = (int(round(v)) for v in box)
        cv2.rectangle(tile, (x, y), (x + w - 1, y + h - 1), (0, 255, 0) if visible else (0, 0, 255), 1)
    cv2.rectangle(tile, (0, 0), (tile.shape[1], 15), (0, 0, 0), -1)
    cv2.putText(tile, label, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _strip(width: int, text: str) -> np.ndarray:
    strip = np.full((22, width, 3), 40, dtype=np.uint8)
    cv2.putText(strip, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return strip


def layout_block(dataset: Any, registry: Any, layout: str, taken: set[str] | None = None) -> np.ndarray:
    """The two rows (RGB, auxiliary) of one layout's block, with its title strip (BGR); the
    sequence shown is added to ``taken``."""
    taken = set() if taken is None else taken
    names = dataset.list_sequences()
    name, truth = _pick_sequence(dataset, names, PREFERRED[layout], taken)
    taken.add(name)
    sequence = dataset.load_sequence(name)
    aux_name = dataset.modalities[1]
    rgb_adapter = registry.modality("rgb")()
    aux_adapter = registry.modality(aux_name)()
    rows: list[list[np.ndarray]] = [[], []]
    for k in _pick_frames(truth):
        rgb_label, aux_label = _condition(truth, k)
        box, visible = sequence.boxes[k], bool(sequence.visible[k])
        rgb = rgb_adapter.render(rgb_adapter.read(sequence, k))
        aux = aux_adapter.render(aux_adapter.read(sequence, k))
        rows[0].append(_tile(rgb, box, visible, f"#{k} rgb: {rgb_label}"))
        rows[1].append(_tile(aux, box, visible, f"#{k} {aux_name}: {aux_label}"))
    body = np.vstack([np.hstack(row) for row in rows])
    title = f"{TITLES[layout]}  -  {name}  -  spells: " + ", ".join(
        f"{s['kind']} {s['start']}-{s['end'] - 1}" for s in truth["spells"]
    )
    return np.vstack([_strip(body.shape[1], title), body])


def write_preview(
    out: Path,
    *,
    seed: int = 0,
    frames: int = 100,
    width: int = 320,
    height: int = 240,
    sequences: int = CANDIDATES,
    registry: Any = None,
) -> Path:
    """Generate small samples of every layout and write the contact sheet PNG to ``out``."""
    registry = registry or installed_plugins()
    synthetic = registry.dataset("synthetic")
    blocks = []
    taken: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="mmtrack-kd-preview-") as folder:
        for layout in LAYOUTS:
            options = SyntheticOptions(
                root=Path(folder) / layout,
                layout=layout,
                n_train=sequences,
                n_test=0,
                frames=frames,
                width=width,
                height=height,
                seed=seed,
                workers=1,
            )
            blocks.append(layout_block(synthetic(options, registry=registry), registry, layout, taken))
    sheet = np.vstack(blocks)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet):
        raise OSError(f"could not write {out}")
    return out
