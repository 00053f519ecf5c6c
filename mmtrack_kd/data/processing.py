"""From a drawn pair of frames to the tensors a model trains on.

OSTrack's ``STARKProcessing`` and transforms, for any number of aligned modalities:

1. Jitter the box the crop is centred on (search: scale ``exp(N(0, 1) * 0.25)`` drawn separately
   for width and height, centre shift ``3 * sqrt(w' * h') * U(-0.5, 0.5)`` per axis; template:
   no jitter by default).
2. Crop the square of side ``sqrt(w' * h') * factor`` around it (:mod:`mmtrack_kd.data.crop`),
   the same window for every modality of the frame; express the true box in the crop.
3. Augment: a horizontal flip of every modality of a frame and its box together (each stream
   through its adapter's ``flip``, so a direction-valued modality can negate a component); on the RGB
   stream (the first) only, a rare grayscale (shared by template and search, as OSTrack's joint
   transform) and a brightness factor ``U(1 - b, 1 + b)`` per crop, clamped to ``[0, 1]``.
4. Normalise each modality with its adapter and turn ``H x W x C`` into ``(C, H, W)`` tensors.

Flip: OSTrack flips the pair jointly and then each crop again on its own, both with probability
0.5, so in effect template and search are each flipped independently with probability 0.5. Here
each frame is flipped independently with ``flip_probability`` (the same at 0.5) and the flip
applies to all its modalities.

A pair whose jittered crop is degenerate (side below one pixel) or lies wholly outside the image
is rejected (OSTrack's ``valid = False``) and the caller draws another.

The training target, the Gaussian heat map (:func:`mmtrack_kd.engine.losses.gaussian_heatmap`),
is a pure function of the search box, so the loss draws it for the whole batch at once rather
than the loader per sample: one call of ~25 small tensor operations a batch instead of a sample,
about 0.5 ms a sample of loader time on a CPU, with the same values (element-wise operations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence as SequenceOf

import cv2
import numpy as np
import torch

from mmtrack_kd.data.crop import crop, crop_window
from mmtrack_kd.data.modality import ModalityAdapter

# --------------------------------------------------------------------------- jitter


def jitter_box(
    box: np.ndarray, scale_jitter: float, centre_jitter: float, rng: np.random.Generator
) -> np.ndarray:
    """OSTrack's ``_get_jittered_box``.

    Width and height are each scaled by ``exp(N(0, 1) * scale_jitter)``; the centre moves by
    ``centre_jitter * sqrt(w' * h') * U(-0.5, 0.5)`` on each axis. Draws two normals, then two
    uniforms, whatever the factors (so the generator advances the same way every time).

    Args:
        box: ``x, y, w, h`` image pixels.

    Returns:
        The jittered ``x, y, w, h``, ``(4,)`` float64.
    """
    box = np.asarray(box, dtype=np.float64)
    size = box[2:4] * np.exp(rng.standard_normal(2) * scale_jitter)
    reach = np.sqrt(size.prod()) * centre_jitter
    centre = box[0:2] + 0.5 * box[2:4] + reach * (rng.random(2) - 0.5)
    return np.concatenate([centre - 0.5 * size, size])


# --------------------------------------------------------------------------- processing


@dataclass(frozen=True)
class CropSpec:
    """How one side of the pair (template or search) is cropped.

    Attributes:
        size: output side in pixels.
        factor: crop side / ``sqrt(w * h)``.
        scale_jitter: ``exp(N(0, 1) * scale_jitter)`` on width and height.
        centre_jitter: centre shift in ``sqrt(area)`` units (times ``U(-0.5, 0.5)``).
    """

    size: int
    factor: float
    scale_jitter: float = 0.0
    centre_jitter: float = 0.0


@dataclass(frozen=True)
class Augmentation:
    """Augmentation switches (OSTrack's training transforms by default).

    Attributes:
        flip_probability: horizontal flip of a frame (all its modalities and its box).
        brightness_jitter: RGB brightness factor drawn from ``U(max(0, 1 - b), 1 + b)``.
        grayscale_probability: RGB to grey (replicated to three channels) for the whole pair.
    """

    flip_probability: float = 0.5
    brightness_jitter: float = 0.2
    grayscale_probability: float = 0.05


NO_AUGMENTATION = Augmentation(0.0, 0.0, 0.0)


@dataclass
class _Side:
    """One processed frame: normalised tensors per modality and the box in the crop."""

    tensors: list[torch.Tensor]
    box: np.ndarray


class PairProcessing:
    """Turns the frames of a drawn pair into a training sample.

    Args:
        adapters: one adapter per stream, RGB first; each stream's crops are normalised as its
            :meth:`ModalityAdapter.normalise` says (photometric augmentation: stream 0 only).
        template: crop of the template frame.
        search: crop of the search frame.
        augmentation: flip / brightness / grayscale settings (:data:`NO_AUGMENTATION` for a
            validation set).
    """

    def __init__(
        self,
        adapters: SequenceOf[ModalityAdapter],
        template: CropSpec,
        search: CropSpec,
        augmentation: Augmentation = Augmentation(),
    ) -> None:
        if not adapters:
            raise ValueError("at least one modality adapter (RGB) is needed")
        self.adapters = list(adapters)
        self.template = template
        self.search = search
        self.augmentation = augmentation
        self._means = [np.asarray(a.mean, dtype=np.float32) for a in self.adapters]
        self._stds = [np.asarray(a.std, dtype=np.float32) for a in self.adapters]
        # Adapters that keep the base (frame - mean) / std are normalised in place (no copies);
        # one that overrides normalise() gets its own method called.
        self._custom = [type(a).normalise is not ModalityAdapter.normalise for a in self.adapters]

    def __call__(
        self,
        template_frames: SequenceOf[np.ndarray],
        template_box: np.ndarray,
        search_frames: SequenceOf[np.ndarray],
        search_box: np.ndarray,
        rng: np.random.Generator,
    ) -> dict[str, object] | None:
        """Process one pair.

        Args:
            template_frames: ``H x W x C_m`` per stream (adapter order), one time step.
            template_box: target ``x, y, w, h`` image pixels in the template frame.
            search_frames: likewise for the search frame.
            search_box: target box in the search frame.
            rng: every random choice comes from here, in a fixed order.

        Returns:
            ``template`` / ``search``: lists (stream order) of ``(C_m, S, S)`` float32 tensors;
            ``template_box`` / ``search_box``: ``(4,)`` float32 ``x, y, w, h`` normalised to the
            crop side -- or None when the
            jittered crop is unusable and another pair should be drawn.
        """
        # Draw everything up front, in a fixed order, so geometry does not depend on which
        # augmentations are switched on.
        template_jitter = self._jitter(template_box, self.template, rng)
        search_jitter = self._jitter(search_box, self.search, rng)
        aug = self.augmentation
        grey = rng.random() < aug.grayscale_probability
        flips = rng.random(2) < aug.flip_probability
        low = max(0.0, 1.0 - aug.brightness_jitter)
        brightness = rng.uniform(low, 1.0 + aug.brightness_jitter, size=2)

        template = self._side(template_frames, template_box, template_jitter, self.template,
                              bool(flips[0]), grey, float(brightness[0]))
        if template is None:
            return None
        search = self._side(search_frames, search_box, search_jitter, self.search,
                            bool(flips[1]), grey, float(brightness[1]))
        if search is None:
            return None
        return {
            "template": template.tensors,
            "search": search.tensors,
            "template_box": torch.from_numpy(template.box.astype(np.float32)),
            "search_box": torch.from_numpy(search.box.astype(np.float32)),
        }

    @staticmethod
    def _jitter(box: np.ndarray, spec: CropSpec, rng: np.random.Generator) -> np.ndarray:
        return jitter_box(box, spec.scale_jitter, spec.centre_jitter, rng)

    def _side(
        self,
        frames: SequenceOf[np.ndarray],
        box: np.ndarray,
        jittered: np.ndarray,
        spec: CropSpec,
        flip: bool,
        grey: bool,
        brightness: float,
    ) -> _Side | None:
        if len(frames) != len(self.adapters):
            raise ValueError(f"{len(frames)} frames for {len(self.adapters)} modality adapters")
        try:
            window = crop_window(jittered, spec.factor, spec.size)
        except ValueError:
            return None
        height, width = frames[0].shape[:2]
        if not window.overlaps(height, width):
            return None
        # Each crop is a fresh float32 array: augment and normalise it in place, then one
        # transposing copy (which also realises the flip) makes the tensor.
        crops = [crop(frame, window).astype(np.float32, copy=False) for frame in frames]
        target = window.to_crop(box, normalised=True)
        self._photometric(crops[0], grey, brightness)
        if flip:
            # Each adapter mirrors its own stream (a flow field also negates its x component),
            # before normalisation so that it sees values in the units `read` gives. Pixel-wise
            # photometry and normalisation commute with a mirror: images come out as before.
            crops = [adapter.flip(image) for adapter, image in zip(self.adapters, crops)]
            target[0] = 1.0 - target[0] - target[2]
        for k, adapter in enumerate(self.adapters):
            if self._custom[k]:
                crops[k] = np.asarray(adapter.normalise(crops[k]), dtype=np.float32)
            else:
                crops[k] -= self._means[k]
                crops[k] /= self._stds[k]
        return _Side([_to_tensor(image) for image in crops], target)

    @staticmethod
    def _photometric(rgb: np.ndarray, grey: bool, brightness: float) -> None:
        """Grayscale and brightness, in place, on the RGB crop (values in ``[0, 1]``)."""
        if grey and rgb.shape[2] == 3:
            rgb[:] = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None]
        if brightness != 1.0:
            rgb *= np.float32(brightness)
            np.clip(rgb, 0.0, 1.0, out=rgb)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """``H x W x C`` (or ``H x W``) array -> contiguous ``(C, H, W)`` float32 tensor."""
    if image.ndim == 2:
        image = image[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))
