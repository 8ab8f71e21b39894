"""The embedded video backend: moving numpy imagery, no model.

Each prompt (with the shot's seed) picks a pattern family, a palette and the pattern's
own motion from a hash; camera words in the prompt ("slow pan left", "fast dolly in",
"orbit right", "tilt up", ...) move a virtual camera over the pattern. Frames are drawn
at about a quarter of the house width, keeping its aspect ratio; the house encode scales
them up.
"""

from __future__ import annotations

import hashlib
import math
import re
import time

import numpy as np

from webtv.config import HouseSection, ProceduralVideoSection
from webtv.director.base import Shot
from webtv.producer.base import Frames, Progress
from webtv.prompt_weights import clean

FAMILIES = ("plasma", "rings", "stripes", "blobs", "hills")

_SPEED_WORDS = {
    "still": 0.2, "static": 0.2, "slow": 0.5, "slowly": 0.5, "gentle": 0.6, "gently": 0.6,
    "steady": 1.0, "smooth": 0.9, "quick": 1.7, "fast": 2.0, "rapid": 2.2, "whip": 3.0,
}


_CAMERA_PHRASE = re.compile(
    r"(?:\b(?:%s)\s+)?\b(?:pan|panning|track|tracking|truck|trucking|tilt|tilting|crane|craning|pedestal|"
    r"zoom|zooming|dolly|push|pushing|pull|pulling|orbit|orbiting|circling|arc)"
    r"(?:\s+shot)?(?:\s+to\s+the)?(?:\s+(?:left|right|up|down|in|out|back))?\b" % "|".join(_SPEED_WORDS),
    re.IGNORECASE,
)


def look_key(prompt: str) -> str:
    """The prompt without its camera move: what picks the pattern and palette, so the same
    shot with another camera move shows the same picture, moved differently."""
    return " ".join(_CAMERA_PHRASE.sub(" ", prompt).split())


def _hash_floats(*parts: object, count: int = 32) -> np.ndarray:
    """``count`` deterministic floats in [0, 1) from the parts."""
    out = []
    block = 0
    while len(out) < count:
        digest = hashlib.sha256(("\x1f".join(map(str, parts)) + f"\x1f{block}").encode("utf-8")).digest()
        out.extend(int.from_bytes(digest[i : i + 4], "big") / 2**32 for i in range(0, 32, 4))
        block += 1
    return np.array(out[:count], dtype=np.float64)


def camera_motion(prompt: str) -> dict[str, float]:
    """Camera velocities asked for by the prompt's words, in screen-heights / zoom-octaves / turns per second.

    pan (+ right), tilt (+ up), zoom (+ in), orbit (+ counter-clockwise, i.e. "orbit left").
    """
    text = prompt.lower()
    speed = 1.0
    for word in re.findall(r"[a-z]+", text):
        if word in _SPEED_WORDS:
            speed = _SPEED_WORDS[word]
    motion = {"pan": 0.0, "tilt": 0.0, "zoom": 0.0, "orbit": 0.0}
    found = False
    if re.search(r"\b(pan|panning|track|tracking|truck|trucking)(?: shot)?(?: to the)? left\b", text):
        motion["pan"] -= 0.35; found = True
    if re.search(r"\b(pan|panning|track|tracking|truck|trucking)(?: shot)?(?: to the)? right\b", text):
        motion["pan"] += 0.35; found = True
    if re.search(r"\b(tilt|tilting|crane|craning|pedestal) up\b", text):
        motion["tilt"] += 0.3; found = True
    if re.search(r"\b(tilt|tilting|crane|craning|pedestal) down\b", text):
        motion["tilt"] -= 0.3; found = True
    if re.search(r"\b(zoom|zooming|dolly|push|pushing) in\b", text):
        motion["zoom"] += 0.35; found = True
    if re.search(r"\b(zoom|zooming|dolly|pull|pulling) (out|back)\b", text):
        motion["zoom"] -= 0.35; found = True
    orbit = re.search(r"\b(orbit|orbiting|circling|arc)(?: shot)?(?: to the)? ?(left|right)?\b", text)
    if orbit:
        motion["orbit"] = 0.06 if orbit.group(2) != "right" else -0.06
        found = True
    if not found and re.search(r"\baerial\b", text):
        motion["pan"] = 0.2
    return {k: v * speed for k, v in motion.items()}


class ProceduralVideo:
    """VideoBackend drawing hashed patterns with numpy; cheap on two CPU cores.

    ``section.render_delay_s`` makes each render take at least that long, standing in for a
    GPU model in tests and benchmarks of the render path."""

    def __init__(self, house: HouseSection, section: ProceduralVideoSection = ProceduralVideoSection(),
                 scale: float = 0.25):
        self.house = house
        self.section = section
        self.delay_s = section.render_delay_s
        width = max(32, int(round(house.width * scale / 2)) * 2)
        height = max(18, int(round(width * house.height / house.width / 2)) * 2)
        self.size = (width, height)

    def render(self, shot: Shot, seconds: float, progress: Progress | None = None, *, light: bool = False) -> Frames:
        deadline = time.monotonic() + self.delay_s
        frames = self._draw(shot, seconds, progress)
        time.sleep(max(0.0, deadline - time.monotonic()))
        return frames

    def _draw(self, shot: Shot, seconds: float, progress: Progress | None) -> Frames:
        fps = self.house.fps
        count = max(1, round(seconds * fps))
        width, height = self.size
        prompt = clean(shot.prompt)  # plain text: (red fox:1.3) draws what "red fox" draws
        r = _hash_floats(look_key(prompt), shot.seed, count=48)
        family = FAMILIES[int(r[0] * len(FAMILIES))]
        lut = _palette(r[1:13], grey=bool(re.search(r"black and white|monochrome|noir", prompt.lower())))
        cam = camera_motion(prompt)
        if not any(cam.values()):
            angle = r[13] * 2 * math.pi
            cam["pan"], cam["tilt"] = 0.12 * math.cos(angle), 0.12 * math.sin(angle)

        aspect = width / height
        xs = np.linspace(-aspect, aspect, width, dtype=np.float32)
        ys = np.linspace(1.0, -1.0, height, dtype=np.float32)  # row 0 is the top of the picture
        gx, gy = np.meshgrid(xs, ys)
        vignette = (1.0 - 0.35 * ((gx / aspect) ** 2 + gy**2) / 2).astype(np.float32)
        vignette = np.clip(vignette * 256, 0, 256).astype(np.uint16)[None, :, :, None]

        if family == "hills":  # keep the horizon level and in view
            base_angle, offset = 0.0, ((r[15] - 0.5) * 4, (r[16] - 0.5) * 0.3)
        else:
            base_angle, offset = r[14] * 2 * math.pi, ((r[15] - 0.5) * 4, (r[16] - 0.5) * 4)
        out = np.empty((count, height, width, 3), dtype=np.uint8)
        chunk = 12
        for start in range(0, count, chunk):
            t = (np.arange(start, min(count, start + chunk), dtype=np.float32) / fps)[:, None, None]
            zoom = np.exp2(cam["zoom"] * t)
            angle = 2 * math.pi * cam["orbit"] * t + base_angle
            cos, sin = np.cos(angle), np.sin(angle)
            sx, sy = gx[None] / zoom, gy[None] / zoom
            wx = cos * sx - sin * sy + cam["pan"] * t + offset[0]
            wy = sin * sx + cos * sy + cam["tilt"] * t + offset[1]
            field = _FIELDS[family](wx, wy, t, r[17:])
            shift = (t * (8 + 24 * r[17]) * (1 if r[18] < 0.5 else -1)).astype(np.int32)
            index = ((np.clip(field, 0.0, 1.0) * 255).astype(np.int32) + shift) & 255
            rgb = lut[index]
            out[start : start + len(t)] = ((rgb.astype(np.uint16) * vignette) >> 8).astype(np.uint8)
            if progress is not None:
                progress("video", min(1.0, (start + len(t)) / count))
        return Frames(out, float(fps))


def _palette(r: np.ndarray, grey: bool = False) -> np.ndarray:
    """A 256-entry cyclic RGB palette (cosine palette with a hashed base hue and contrast)."""
    t = np.arange(256, dtype=np.float64)[:, None] / 256
    hue = r[0]
    base = np.array([hue, hue + 1 / 3, hue + 2 / 3]) * 2 * math.pi
    a = 0.35 + 0.25 * r[1] + 0.1 * np.cos(base)
    b = 0.25 + 0.25 * r[2]
    c = 1.0 + int(r[3] * 2)  # the palette cycles once or twice over the field's range
    d = r[7:10] * 0.6 + np.array([hue, hue + 0.15, hue + 0.3])
    rgb = a + b * np.cos(2 * math.pi * (c * t + d))
    if grey:
        rgb = rgb.mean(axis=1, keepdims=True).repeat(3, axis=1)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _plasma(x, y, t, r):
    k = 1.5 + 3 * r[:4]
    w = (r[4:8] - 0.5) * 3
    v = np.sin(k[0] * x + w[0] * t)
    v += np.sin(k[1] * y + w[1] * t + 1.3)
    v += np.sin(k[2] * (x * 0.7 + y * 0.7) + w[2] * t)
    cx, cy = np.sin(t * 0.3 + r[8] * 6) * 0.8, np.cos(t * 0.4 + r[9] * 6) * 0.8
    v += np.sin(k[3] * np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + 0.1) - w[3] * t)
    return v * 0.125 + 0.5


def _rings(x, y, t, r):
    k = 5 + 10 * r[0]
    cx = 0.5 * np.sin(t * (0.2 + 0.4 * r[1]) + r[2] * 6)
    cy = 0.4 * np.cos(t * (0.2 + 0.3 * r[3]) + r[4] * 6)
    dist = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    arms = int(2 + r[5] * 5)
    theta = np.arctan2(y - cy, x - cx)
    v = np.sin(k * dist - (1.5 + 2 * r[6]) * t + 0.6 * np.sin(arms * theta + t))
    return v * 0.45 + 0.5 - 0.15 * np.clip(dist - 1, 0, 1)


def _stripes(x, y, t, r):
    angle = r[0] * math.pi
    u = x * math.cos(angle) + y * math.sin(angle)
    vv = -x * math.sin(angle) + y * math.cos(angle)
    k = 4 + 8 * r[1]
    warp = (0.3 + 0.7 * r[2]) * np.sin((1.5 + 2 * r[3]) * vv + (0.5 + r[4]) * t)
    v = np.sin(k * u + warp * 2 + (r[5] - 0.5) * 2 * t)
    return v * 0.4 + 0.5 + 0.1 * np.sin(vv * 1.3 + t * 0.5)


def _blobs(x, y, t, r):
    v = np.zeros(np.broadcast_shapes(x.shape, t.shape), dtype=np.float32)
    n = 4 + int(r[0] * 4)
    for i in range(n):
        p = r[1 + 3 * i : 4 + 3 * i]
        bx = 1.2 * np.sin(t * (0.3 + 0.6 * p[0]) + i * 1.7 + p[1] * 6)
        by = 0.8 * np.cos(t * (0.25 + 0.5 * p[1]) + i * 2.3 + p[2] * 6)
        radius = 0.08 + 0.12 * p[2]
        v += radius / ((x - bx) ** 2 + (y - by) ** 2 + 0.02)
    return 0.85 * np.tanh(v * 0.5) + 0.12 * np.sin(np.minimum(v, 4.0) * 3)


def _hills(x, y, t, r):
    """Layered ridges under a sky: reads as an imaginary landscape, moves well with pans."""
    sky = 0.15 + 0.25 * (y + 1) / 2 + 0.03 * np.sin(3 * x + t * 0.2)
    v = sky
    layers = 4
    for i in range(layers):
        depth = (i + 1) / layers
        height = 0.4 - 0.35 * depth + 0.12 * np.sin(x * (1 + 2.5 * depth + r[i]) + r[i + 4] * 6 + t * 0.05 * depth)
        height = height + 0.05 * np.sin(x * (6 + 5 * r[i + 8]) * depth + i)
        mask = y < height
        v = np.where(mask, 0.45 + 0.5 * depth - 0.1 * (height - y), v)
    return v


_FIELDS = {"plasma": _plasma, "rings": _rings, "stripes": _stripes, "blobs": _blobs, "hills": _hills}
