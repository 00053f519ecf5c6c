"""``mmtrack-kd export CHECKPOINT --format onnx``: the student as two ONNX graphs.

A tracker initialises once per sequence and then runs one search region per frame, so the
model is exported as the two halves of that loop (what :meth:`TrackingModel.set_template` and
:meth:`TrackingModel.track` do):

* ``template.onnx``: ``template_0 .. template_{M-1}`` (normalised crops ``(1, C_m, Ht, Wt)``,
  RGB first) -> ``template_tokens_0 .. template_tokens_{M-1}`` (patch embeddings
  ``(1, Nz, D)``, no position).
* ``track.onnx``: ``template_tokens_*`` and ``search_0 .. search_{M-1}`` (``(1, C_m, Hs, Ws)``)
  -> ``score_map (1, 1, H, W)``, ``size_map (1, 2, H, W)``, ``offset_map (1, 2, H, W)``,
  ``boxes (1, 4)`` (normalised ``cx, cy, w, h`` at the score map's arg-max).

The graphs have a fixed batch of 1 (candidate elimination keeps ``ceil(ratio * K)`` tokens, a
number fixed by the shapes, and is traced at the checkpoint's ``ce_keep_ratio``). Cropping,
normalisation (the adapters' mean / std, written to ``export.json``), the Hann window and the
mapping back to the image stay in the caller, as in :class:`mmtrack_kd.tracking.tracker.Tracker`.

Exported with the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``), opset
17; ``scaled_dot_product_attention`` becomes plain MatMul / Softmax nodes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from mmtrack_kd.checkpoints import load_model
from mmtrack_kd.errors import CheckpointError, MmtrackError, NotAvailableError
from mmtrack_kd.runtime.timing import time_calls

OPSET = 17
TRACK_OUTPUTS = ("score_map", "size_map", "offset_map", "boxes")


class TemplateGraph(nn.Module):
    """``set_template`` as a module: templates -> patch embeddings, one per modality."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *templates: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.model.embed_templates(list(templates)))


class TrackGraph(nn.Module):
    """``track`` as a module: template tokens and search regions -> head outputs."""

    def __init__(self, model: nn.Module, keep_ratio: float | None = None) -> None:
        super().__init__()
        self.model = model
        self.keep_ratio = keep_ratio

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        m = self.model.num_modalities
        out = self.model.forward_embedded(list(inputs[:m]), list(inputs[m:]), False, self.keep_ratio)
        return out.score_map, out.size_map, out.offset_map, out.boxes


def example_inputs(model: nn.Module, seed: int = 0) -> tuple[list[Tensor], list[Tensor]]:
    """Batch-1 random ``(templates, searches)`` at the model's sizes and channels."""
    generator = torch.Generator().manual_seed(seed)
    config = model.config
    channels = [3] + [config.get("aux_in_chans", 3)] * (model.num_modalities - 1)
    t, s = config["template_size"], config["search_size"]
    templates = [torch.randn(1, c, t, t, generator=generator) for c in channels]
    searches = [torch.randn(1, c, s, s, generator=generator) for c in channels]
    return templates, searches


def export_model_onnx(
    model: nn.Module,
    out_dir: str | os.PathLike,
    keep_ratio: float | None = None,
    opset: int = OPSET,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``template.onnx``, ``track.onnx`` and ``export.json`` for ``model`` into ``out_dir``.

    Returns ``{"template": path, "track": path, "meta": path}``.
    """
    require_onnx("onnx")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MmtrackError(f"--out {out_dir}: a file is in the way of the export folder")
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return _write_onnx(model, out_dir, keep_ratio, opset, metadata)
    except BaseException:
        if created:  # a failed export leaves no half-written or empty folder behind
            shutil.rmtree(out_dir, ignore_errors=True)
        raise


def require_onnx(*modules: str) -> None:
    """Refuse early, before any folder is made, when the ``onnx`` extra is not installed."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise NotAvailableError(
            f"ONNX export needs {' and '.join(missing)}, which is not installed: "
            "pip install 'mmtrack-kd[onnx]'"
        )


def _write_onnx(
    model: nn.Module, out_dir: Path, keep_ratio: float | None, opset: int,
    metadata: dict[str, Any] | None,
) -> dict[str, Path]:
    model = model.cpu().eval()
    m = model.num_modalities
    templates, searches = example_inputs(model)
    template_names = [f"template_{i}" for i in range(m)]
    token_names = [f"template_tokens_{i}" for i in range(m)]
    search_names = [f"search_{i}" for i in range(m)]
    paths = {"template": out_dir / "template.onnx", "track": out_dir / "track.onnx", "meta": out_dir / "export.json"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints from shapes
        tokens = model.embed_templates(templates)
        torch.onnx.export(
            TemplateGraph(model), tuple(templates), str(paths["template"]), input_names=template_names,
            output_names=token_names, opset_version=opset, dynamo=False,
        )  # fmt: skip
        torch.onnx.export(
            TrackGraph(model, keep_ratio), tuple(tokens) + tuple(searches), str(paths["track"]),
            input_names=token_names + search_names, output_names=list(TRACK_OUTPUTS),
            opset_version=opset, dynamo=False,
        )  # fmt: skip
    meta = {
        "format": "mmtrack-kd-onnx",
        "kind": getattr(model, "kind", ""),
        "model_config": model.config,
        "keep_ratio": keep_ratio,
        "opset": opset,
        "graphs": {
            "template": {"file": paths["template"].name, "inputs": template_names, "outputs": token_names},
            "track": {"file": paths["track"].name, "inputs": token_names + search_names, "outputs": list(TRACK_OUTPUTS)},
        },
        **(metadata or {}),
    }
    paths["meta"].write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    return paths


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike | None = None,
    format: str = "onnx",
    keep_ratio: float | None = None,
    opset: int = OPSET,
) -> dict[str, Path]:
    """``mmtrack-kd export CHECKPOINT --format onnx [--out DIR]``.

    ``out`` is a folder (default: ``<checkpoint without suffix>-onnx`` beside the checkpoint).
    The checkpoint's ``modalities`` and ``crop`` entries are copied into ``export.json`` so a
    runtime can crop and normalise as the tracker does. Only the student is accepted.
    """
    if format != "onnx":
        raise ValueError(f"unknown export format {format!r}; only 'onnx'")
    require_onnx("onnx")
    checkpoint = Path(checkpoint)
    model, saved = load_model(checkpoint)
    if getattr(model, "kind", "") != "student":
        raise CheckpointError(f"checkpoint {checkpoint}: export takes a student, this is a {model.kind}")
    out = Path(out) if out is not None else checkpoint.with_name(checkpoint.stem + "-onnx")
    payload = saved.to_payload()  # the entries as plain data, as the file holds them
    extra = {key: payload[key] for key in ("modalities", "crop") if key in payload}
    extra["checkpoint"] = str(checkpoint)
    return export_model_onnx(model, out, keep_ratio, opset, extra)


class OnnxStudent:
    """The exported graphs under onnxruntime, with the ``set_template`` / ``track`` API.

    ``track`` returns the four outputs as numpy arrays in a dict keyed by :data:`TRACK_OUTPUTS`.
    """

    def __init__(self, out_dir: str | os.PathLike, threads: int | None = None) -> None:
        import onnxruntime as ort  # the optional ``onnx`` extra: imported only when it is used

        out_dir = Path(out_dir)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        self.template = ort.InferenceSession(str(out_dir / "template.onnx"), options, providers=providers)
        self.session = ort.InferenceSession(str(out_dir / "track.onnx"), options, providers=providers)
        self.template_inputs = [i.name for i in self.template.get_inputs()]
        self.num_modalities = len(self.template_inputs)
        self._tokens: list[np.ndarray] | None = None

    def set_template(self, templates: Sequence[np.ndarray | Tensor]) -> None:
        feeds = {name: _numpy(t) for name, t in zip(self.template_inputs, templates)}
        self._tokens = self.template.run(None, feeds)

    def track(self, searches: Sequence[np.ndarray | Tensor]) -> dict[str, np.ndarray]:
        if self._tokens is None:
            raise RuntimeError("track() before set_template()")
        m = self.num_modalities
        feeds = {f"template_tokens_{i}": self._tokens[i] for i in range(m)}
        feeds.update({f"search_{i}": _numpy(s) for i, s in enumerate(searches)})
        return dict(zip(TRACK_OUTPUTS, self.session.run(None, feeds)))


def _numpy(value: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value, dtype=np.float32)


def compare_with_pytorch(
    model: nn.Module, out_dir: str | os.PathLike, seeds: Sequence[int] = (0, 1, 2), keep_ratio: float | None = None
) -> dict[str, float]:
    """Largest differences between onnxruntime and PyTorch on random inputs.

    Returns ``{"boxes_max_abs", "boxes_max_px", "score_map_max_abs", "size_map_max_abs",
    "offset_map_max_abs"}`` over the inputs of ``seeds`` (``*_px``: pixels of the search crop).
    """
    runner = OnnxStudent(out_dir)
    model = model.cpu().eval()
    worst = {f"{name}_max_abs": 0.0 for name in TRACK_OUTPUTS}
    for seed in seeds:
        templates, searches = example_inputs(model, seed)
        with torch.no_grad():
            model.set_template(templates)
            ref = model.track(searches, keep_ratio=keep_ratio)
        runner.set_template(templates)
        got = runner.track(searches)
        for name in TRACK_OUTPUTS:
            diff = float(np.abs(got[name] - getattr(ref, name).numpy()).max())
            worst[f"{name}_max_abs"] = max(worst[f"{name}_max_abs"], diff)
    worst["boxes_max_px"] = worst["boxes_max_abs"] * float(model.config["search_size"])
    return worst


def compare_fps(
    model: nn.Module, out_dir: str | os.PathLike, warmup: int = 5, repeats: int = 30, keep_ratio: float | None = None
) -> dict[str, Any]:
    """Per-frame ``track`` speed on CPU, onnxruntime beside PyTorch (batch 1, median of
    ``repeats`` after ``warmup``; template set once, as in tracking)."""
    runner = OnnxStudent(out_dir, threads=torch.get_num_threads())
    model = model.cpu().eval()
    templates, searches = example_inputs(model)
    runner.set_template(templates)
    feeds = [_numpy(s) for s in searches]
    with torch.no_grad():
        model.set_template(templates)

    def timed(call: Callable[[], Any]) -> float:
        return float(np.median(time_calls(call, warmup, repeats)))

    with torch.inference_mode():
        torch_s = timed(lambda: model.track(searches, keep_ratio=keep_ratio))
    ort_s = timed(lambda: runner.track(feeds))
    return {
        "pytorch_ms": torch_s * 1e3,
        "onnxruntime_ms": ort_s * 1e3,
        "pytorch_fps": 1.0 / torch_s,
        "onnxruntime_fps": 1.0 / ort_s,
        "threads": torch.get_num_threads(),
        "warmup": warmup,
        "repeats": repeats,
    }
