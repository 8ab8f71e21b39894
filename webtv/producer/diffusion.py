"""What every diffusers-pipeline stage shares (Zeroscope, LTX-Video): lazy loading, device
and dtype, CPU offload, progress per denoising step, seeded noise, frames out as uint8.

A stage subclass names its pipeline class and its progress word, and says how its memory
switches apply (``_memory_switches``) and, if it swaps one, which scheduler it runs
(``_prepare_scheduler``). Its section carries ``model``, ``device`` and ``cpu_offload``.

The pipeline loads on the first call (a lock keeps two threads from loading it twice, and
serialises renders: a pipeline's scheduler is not thread-safe) and stays loaded.
``light=True`` (the retry after an out-of-memory failure) turns CPU offload on for that call
and every later one: a stage that ran out of memory once would likely do so again, and
moving the weights back costs time. ``cpu_offload`` is ``enable_model_cpu_offload`` (CUDA
only, needs the ``accelerate`` package): each model visits the GPU only while it runs.

Noise comes from a CPU generator seeded with ``shot.seed``, so a seed gives the same
frames on CPU and GPU, offloaded or not.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import threading
from typing import Any, Callable

import numpy as np

from webtv.director.base import Shot
from webtv.producer.base import Progress
from webtv.producer.devices import model_source, pick_device, pick_dtype
from webtv.prompt_weights import clean

log = logging.getLogger("webtv.producer")


def load_pipeline(class_name: str, model: str, what: str, dtype, marker: str) -> Any:
    """``diffusers.<class_name>.from_pretrained(model)``, on the CPU, at ``dtype``.

    Raises RuntimeError("cannot load <what> model '<model>': ...") when the folder is missing
    or is no pipeline folder, or when the hub cannot give the model.
    """
    import diffusers

    source = model_source(model, what, marker)
    pipeline_class = getattr(diffusers, class_name)
    try:
        return pipeline_class.from_pretrained(source, dtype=dtype)
    except Exception as exc:
        raise RuntimeError(f"cannot load {what} model {model!r}: {exc}") from exc


def uint8_frames(frames) -> np.ndarray:
    """A pipeline's ``.frames`` (np, batch first, floats in [0, 1]) as uint8 (T, H, W, 3)."""
    video = np.asarray(frames)
    if video.ndim == 5:
        video = video[0]
    if video.ndim != 4 or video.shape[-1] != 3:
        raise RuntimeError(f"unexpected frames from the pipeline: shape {video.shape}")
    if video.dtype == np.uint8:
        return np.ascontiguousarray(video)
    return np.rint(np.clip(video, 0.0, 1.0) * 255.0).astype(np.uint8)


class DiffusionStage:
    """One diffusers pipeline, loaded once, run under a lock."""

    pipeline_class = ""
    what = ""  # the progress stage name, and the word in errors
    cuda_dtype = "float16"  # the dtype the checkpoints are used at on CUDA (fp32 on the CPU)

    def __init__(self, section: Any):
        self.section = section
        self._lock = threading.Lock()
        self._pipe = None
        self._device = None
        self._offloaded = False
        self.loads = 0  # how many times the weights were loaded (tests, status)

    @property
    def pipeline(self):
        """The loaded pipeline, or None before the first call."""
        return self._pipe

    def use_pipeline(self, pipe) -> None:
        """Use ``pipe``, already built, on its device and at its dtype, instead of loading
        ``model`` (benchmarks with random weights at the real sizes, tests). The scheduler
        swap and ``cpu_offload`` apply as for a loaded one."""
        with self._lock:
            self._offloaded = False
            self._device = pipe.device
            self._prepare(pipe)
            self._pipe = pipe

    def _load(self):
        if self._pipe is not None:
            return self._pipe
        device = pick_device(self.section.device)
        log.info("loading %s model %r on %s", self.what, self.section.model, device)
        pipe = load_pipeline(self.pipeline_class, self.section.model, self.what, pick_dtype(device, self.cuda_dtype),
                             self.section.model_marker)
        self._offloaded = False
        self._device = device
        if not (self.section.cpu_offload and device.type == "cuda"):
            pipe.to(device)
        self._prepare(pipe)
        self._pipe = pipe
        self.loads += 1
        return pipe

    def _prepare(self, pipe) -> None:
        self._prepare_scheduler(pipe)
        pipe.set_progress_bar_config(disable=True)
        if self.section.cpu_offload:
            if self._device.type == "cuda":
                self._offload(pipe, required=True)
            else:
                log.info("%s: cpu_offload only applies on CUDA; running on %s", self.what, self._device)

    def _prepare_scheduler(self, pipe) -> None:
        """Swap the checkpoint's scheduler for another, where the stage runs one (none here)."""

    def _offload(self, pipe, *, required: bool) -> None:
        if self._offloaded or self._device.type != "cuda":
            return
        if importlib.util.find_spec("accelerate") is None:
            message = f"{self.what}: cpu offload needs the accelerate package (pip install accelerate)"
            if required:
                raise RuntimeError(message)
            log.warning("%s; the light retry runs without it", message)
            return
        pipe.enable_model_cpu_offload(device=self._device)
        self._offloaded = True

    def _switches(self, pipe, light: bool) -> None:
        if light:
            self._offload(pipe, required=False)
        self._memory_switches(pipe, light)

    def _memory_switches(self, pipe, light: bool) -> None:
        """Apply the section's memory switches for this call; every one on when ``light``."""

    def _draw(self, shot: Shot, count: int, steps: int, light: bool, progress: Progress | None,
              **kwargs) -> np.ndarray:
        """Denoise ``shot`` (its prompt and seed) with the pipeline, loaded and switched for this
        call under the lock: ``count`` frames at the section's size, or RuntimeError. ``steps``
        is how many denoising steps will run; progress goes (what, k / (steps + 1)) after each,
        and 1.0 once the frames are decoded. ``kwargs`` go on to ``_denoise``."""
        section = self.section
        if progress:
            progress(self.what, 0.0)
        on_step = (lambda step: progress(self.what, min(step + 1, steps) / (steps + 1))) if progress else None
        with self._lock:
            pipe = self._load()
            self._switches(pipe, light)
            array = uint8_frames(self._denoise(pipe, shot, on_step, **kwargs))
        if progress:
            progress(self.what, 1.0)
        if array.shape[:3] != (count, section.height, section.width):
            raise RuntimeError(f"{self.what}: expected {count} frames of {section.width}x{section.height}, "
                               f"got {array.shape}")
        return array

    def _denoise(self, pipe, shot: Shot, on_step: Callable[[int], None] | None, **kwargs) -> Any:
        """The pipeline's own call (the section's negative prompt and guidance, seeded noise,
        ``kwargs``): its ``.frames`` for ``output_type="np"``. A stage that runs its own denoise
        loop over the pipeline's components overrides this."""
        section = self.section
        if on_step:
            accepted = inspect.signature(pipe.__call__).parameters
            if "callback_on_step_end" in accepted:
                def on_step_end(_pipe, step, _timestep, _tensors):
                    on_step(step)
                    return {}

                kwargs["callback_on_step_end"] = on_step_end
            elif "callback" in accepted:
                kwargs["callback"] = lambda step, _timestep, _latents: on_step(step)
                kwargs["callback_steps"] = 1
        # plain text: weights reach the Zeroscope passes only (their own loops, denoise.py)
        return pipe(prompt=clean(shot.prompt), negative_prompt=clean(section.negative_prompt) or None,
                    guidance_scale=section.guidance, generator=self._generator(shot.seed), **kwargs,
                    output_type="np").frames

    def _generator(self, seed: int):
        import torch

        return torch.Generator("cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
