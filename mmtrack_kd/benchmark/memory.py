"""Peak memory of one training step per stage, at the recipe's batch sizes.

* **CUDA**: ``torch.cuda.max_memory_allocated`` (reset after the models, the optimiser and the
  batch are on the device), i.e. the step's peak of tensors allocated by PyTorch, plus the
  resident part before the step.
* **CPU**: ``tracemalloc`` does not see PyTorch's allocator, so each stage runs in a fresh
  Python subprocess and reads ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (peak resident set,
  KiB on Linux) after the steps, and the current resident set (``/proc/self/statm``) once the
  models, optimiser and batch exist, before the steps; the difference is what the step adds (activations, gradients, AdamW state), the final value the
  process's peak. A fresh process per stage keeps one stage's peak out of the other's.

The step: ``teacher`` stage -- teacher forward in train mode, a stand-in tracking loss touching
every head output, backward, AdamW step. ``student`` stage -- frozen teacher forward without
gradient (``return_features``), student forward with features, stand-in loss plus feature MSE on
every block, backward, AdamW step. ``steps`` steps are run (2 by default, so AdamW's state, made
on the first step, is resident during the second as in a real run). The stand-in loss costs
nothing measurable next to the forward and backward; data loading is not part of it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from typing import Any

import torch

from mmtrack_kd.engine.stages import STAGES
from mmtrack_kd.models import build_model
from mmtrack_kd.models.profile import dummy_inputs
from mmtrack_kd.recipe import Recipe


def _stand_in_loss(out) -> torch.Tensor:
    return out.score_map.mean() + out.size_map.mean() + out.offset_map.abs().mean() + out.boxes.abs().mean()


def _feature_loss(student_out, teacher_out) -> torch.Tensor:
    loss = student_out.score_logits.new_zeros(())
    masks = student_out.feature_masks
    for index, (s, t) in enumerate(zip(student_out.features, teacher_out.features)):
        diff = (s - t) ** 2
        if masks is not None:
            diff = diff * masks[index].unsqueeze(-1)
        loss = loss + diff.mean()
    return loss


def _training_step_setup(stage: str, models: dict[str, Any], batch_size: int, device: torch.device):
    """Models, optimiser, inputs and a ``step()`` closure for one stage."""
    teacher = build_model(*models["teacher"]).to(device)
    if stage == "teacher":
        teacher.train()
        trained, frozen = teacher, None
    else:
        teacher.eval().requires_grad_(False)
        trained, frozen = build_model(*models["student"]).to(device).train(), teacher
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=1e-5)
    templates, searches = dummy_inputs(trained, batch_size, device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        if frozen is None:
            loss = _stand_in_loss(trained(templates, searches))
        else:
            with torch.no_grad():
                reference = frozen(templates, searches, return_features=True)
            out = trained(templates, searches, return_features=True)
            loss = _stand_in_loss(out) + _feature_loss(out, reference)
        loss.backward()
        optimizer.step()

    return step


def _rss_bytes() -> int:
    # ru_maxrss is KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _current_rss_bytes() -> int:
    """Resident set size now (``/proc/self/statm``; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _rss_bytes()


def measure_step(stage: str, models: dict[str, Any], batch_size: int, device: str = "cpu", steps: int = 2) -> dict:
    """Peak memory of ``steps`` training steps of ``stage`` in *this* process (see module doc)."""
    device_t = torch.device(device)
    step = _training_step_setup(stage, models, batch_size, device_t)
    if device_t.type == "cuda":
        torch.cuda.synchronize(device_t)
        before = torch.cuda.memory_allocated(device_t)
        torch.cuda.reset_peak_memory_stats(device_t)
        for _ in range(steps):
            step()
        torch.cuda.synchronize(device_t)
        peak = torch.cuda.max_memory_allocated(device_t)
        method = "torch.cuda.max_memory_allocated"
    else:
        before = _current_rss_bytes()
        for _ in range(steps):
            step()
        peak = _rss_bytes()
        method = "ru_maxrss - RSS before, subprocess"
    return {
        "stage": stage,
        "batch_size": batch_size,
        "steps": steps,
        "method": method,
        "resident_before_bytes": before,
        "peak_bytes": peak,
        "step_bytes": peak - before,
        "peak_gib": peak / 2**30,
        "step_gib": (peak - before) / 2**30,
    }


def stage_models(recipe: Recipe, registry: Any = None) -> dict[str, Any]:
    """``{"teacher": (kind, config), "student": (kind, config)}`` as the recipe trains them."""
    stages = {name: STAGES[name](recipe) for name in ("teacher", "student")}
    return {name: list(stage.model_config(stage.modalities(registry).aux_channels))
            for name, stage in stages.items()}


def training_peak_memory(
    recipe: Recipe,
    device: str = "cpu",
    registry: Any = None,
    batch_size: int | None = None,
    stages: tuple[str, ...] = ("teacher", "student"),
    steps: int = 2,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Peak memory of a training step per stage: ``{stage: measure_step(...) dict}``.

    ``batch_size`` overrides the stages' ``optim.batch_size`` (global batch of the recipe).
    On CPU each stage runs in a subprocess (``python -m mmtrack_kd.benchmark.memory``); a stage
    that fails (out of memory, killed) gives ``{"error": ...}``.
    """
    models = stage_models(recipe, registry)
    out: dict[str, Any] = {}
    for stage in stages:
        batch = batch_size or getattr(recipe, stage).optim.batch_size
        if torch.device(device).type == "cuda":
            try:
                out[stage] = measure_step(stage, models, batch, device, steps)
            except torch.cuda.OutOfMemoryError as error:
                out[stage] = {"stage": stage, "batch_size": batch, "error": f"out of memory: {error}"}
            finally:
                torch.cuda.empty_cache()
            continue
        request = json.dumps({"stage": stage, "models": models, "batch_size": batch, "device": device, "steps": steps})
        process = subprocess.run(
            [sys.executable, "-m", "mmtrack_kd.benchmark.memory"],
            input=request, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())},
        )  # fmt: skip
        if process.returncode != 0:
            tail = (process.stderr or "").strip().splitlines()[-1:] or [f"exit status {process.returncode}"]
            out[stage] = {"stage": stage, "batch_size": batch, "error": tail[0]}
        else:
            out[stage] = json.loads(process.stdout.strip().splitlines()[-1])
    return out


def _main() -> None:
    request = json.loads(sys.stdin.read())
    models = {key: (kind, config) for key, (kind, config) in request["models"].items()}
    result = measure_step(request["stage"], models, request["batch_size"], request["device"], request["steps"])
    print(json.dumps(result))


if __name__ == "__main__":
    _main()
