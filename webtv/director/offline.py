"""The embedded director: theme -> a sequence of shot prompts, from vocabularies, no network.

Deterministic for (theme, seed). A sequence keeps one character, one setting, one style
and one light, and repeats them in every shot prompt, so a text-to-video model keeps them
across the cuts; framing, action and camera move change from shot to shot. No camera or
brand names (video models paint them as text).
"""

from __future__ import annotations

import hashlib
import random
import re
import time

from webtv.director.base import DirectorState, EpisodeBrief, Sequence, Shot
from webtv.prompt_weights import weighted

# Settings and characters grouped by what a theme may ask for; "any" is always eligible.
_SETTINGS: dict[str, list[str]] = {
    "any": [
        "in a quiet valley of tall grass",
        "on a winding mountain road",
        "in an abandoned greenhouse full of ferns",
        "on a salt flat under a vast sky",
        "in a village of crooked stone houses",
        "beside a still lake ringed with pines",
    ],
    "sea": [
        "on a windswept cliff above a grey sea",
        "on a long empty beach at low tide",
        "aboard a small wooden sailboat",
        "in a harbour of tilted fishing boats",
    ],
    "city": [
        "in a rain-soaked neon alley",
        "on a rooftop above a sprawling city",
        "in a crowded night market with paper lanterns",
        "on an empty subway platform",
    ],
    "forest": [
        "in an ancient mossy forest",
        "in a misty birch wood",
        "under giant redwood trees",
        "in a glade of glowing mushrooms",
    ],
    "space": [
        "on the surface of a red desert planet",
        "inside a quiet orbital station",
        "among floating crystal asteroids",
        "under a sky with two moons",
    ],
    "desert": [
        "among rolling golden dunes",
        "in a canyon of layered red rock",
        "at a lonely oasis with palm trees",
    ],
    "winter": [
        "in a snowy pine forest",
        "on a frozen lake under northern lights",
        "in a small cabin village buried in snow",
    ],
    "dream": [
        "in a floating garden of upside-down trees",
        "on a staircase that winds into the clouds",
        "in a library whose shelves reach the sky",
        "on a chessboard plain under a violet sky",
    ],
}

_CHARACTERS: dict[str, list[str]] = {
    "any": [
        "an old wanderer in a long green cloak",
        "a young woman with a yellow umbrella",
        "a small fox with a white-tipped tail",
        "a curious child in a red raincoat",
        "a tall heron with grey feathers",
        "a traveller with a battered leather satchel",
        "a cyclist in a blue knitted sweater",
    ],
    "sea": ["a weathered fisherman in an orange oilskin", "a lighthouse keeper with a white beard", "a grey seal"],
    "city": ["a courier in a silver jacket", "a stray black cat with green eyes", "a street musician with a violin"],
    "forest": ["a deer with velvet antlers", "a forest ranger in a brown hat", "a barn owl with golden eyes"],
    "space": ["an astronaut in a white suit with a gold visor", "a small rust-coloured robot", "a pilot in a flight suit"],
    "desert": ["a nomad in indigo robes", "a camel with a woven saddle", "a desert fox with large ears"],
    "winter": ["a husky with ice-blue eyes", "a skier in a red parka", "a polar bear cub"],
    "dream": ["a paper crane the size of a person", "a girl with a lantern made of stars", "a clockwork whale"],
}

_KEYWORDS: dict[str, tuple[str, ...]] = {
    "sea": ("sea", "ocean", "beach", "coast", "harbour", "harbor", "sail", "island", "wave", "waves", "tide", "lighthouse"),
    "city": ("city", "urban", "street", "neon", "night", "metropolis", "town", "cyberpunk", "rain"),
    "forest": ("forest", "wood", "woods", "tree", "trees", "jungle", "nature", "woodland", "moss", "garden"),
    "space": ("space", "planet", "star", "stars", "galaxy", "cosmic", "orbit", "alien", "moon", "sci-fi", "future"),
    "desert": ("desert", "dune", "dunes", "sand", "canyon", "oasis"),
    "winter": ("winter", "snow", "ice", "frozen", "arctic", "cold"),
    "dream": ("dream", "dreams", "dreamy", "imaginary", "surreal", "fantasy", "magic", "fairy", "myth"),
}

_ACTIONS = [
    "walking slowly forward",
    "pausing to look at the horizon",
    "turning around",
    "sitting down to rest",
    "looking up at the sky",
    "walking away into the distance",
    "stopping to listen",
    "crossing from left to right",
    "running a few steps",
    "standing still as the wind moves around them",
    "reaching out towards something",
    "glancing back",
]

_FRAMINGS = ["wide shot", "establishing shot", "medium shot", "close-up", "low-angle shot", "high-angle shot", "aerial view", "long shot"]

_SPEEDS = ["slow", "slow", "gentle", "steady", "fast"]
_MOVES = [
    "pan left",
    "pan right",
    "tilt up",
    "tilt down",
    "dolly in",
    "dolly out",
    "zoom in",
    "zoom out",
    "orbit left",
    "orbit right",
    "tracking shot left",
    "tracking shot right",
]

_LIGHTS = [
    "golden hour light",
    "soft overcast light",
    "blue hour twilight",
    "warm lantern light",
    "cold moonlight",
    "dappled sunlight",
    "misty morning light",
    "dramatic backlight",
]

_NIGHT_WORDS = ("night", "dark", "neon", "midnight", "moon", "moonlit", "noir")
_NIGHT_LIGHTS = ["cold moonlight", "warm lantern light", "neon glow", "blue hour twilight", "flickering streetlight"]

_STYLES = [
    ("watercolor", "watercolor painting"),
    ("cinematic", "cinematic film still, shallow depth of field"),
    ("anime", "anime style, hand-painted backgrounds"),
    ("oil", "oil painting, thick brushstrokes"),
    ("claymation", "claymation, handmade miniature set"),
    ("pastel", "soft pastel illustration"),
    ("noir", "black and white film noir"),
    ("photoreal", "photorealistic, highly detailed"),
]

# Music: mood words chosen from the theme, else from the seed.
_MOODS: dict[str, tuple[str, ...]] = {
    "calm": ("calm", "peaceful", "quiet", "gentle", "relaxing", "serene", "soft", "slow", "lazy", "journey"),
    "dark": ("dark", "night", "noir", "storm", "haunted", "mystery", "mysterious", "shadow", "horror"),
    "upbeat": ("happy", "bright", "fun", "summer", "festival", "dance", "party", "joyful", "sunny"),
    "energetic": ("fast", "action", "chase", "race", "energetic", "battle", "speed", "adventure"),
    "dreamy": ("dream", "dreams", "dreamy", "imaginary", "surreal", "fantasy", "magic", "space", "cosmic"),
    "melancholic": ("sad", "lonely", "rain", "autumn", "melancholy", "melancholic", "memory", "memories", "winter"),
}

_MUSIC = {
    "calm": ("calm ambient", "slow tempo", "soft pads, warm piano, gentle pulse"),
    "dark": ("dark synthwave", "moderate tempo", "deep bass, minor chords, distant drums"),
    "upbeat": ("upbeat pop", "fast tempo", "bright synth chords, bouncy bass, crisp hi-hats"),
    "energetic": ("energetic electronic", "fast tempo", "driving kick, pulsing bass, bold chords"),
    "dreamy": ("dreamy lo-fi", "slow tempo", "airy pads, soft arpeggios, mellow drums"),
    "melancholic": ("melancholic piano ambient", "slow tempo", "minor chords, soft strings, light percussion"),
}

_STOPWORDS = {
    "a", "an", "the", "of", "and", "or", "in", "on", "at", "to", "through", "with", "for", "from",
    "by", "into", "over", "under", "about", "is", "are", "its", "it", "as", "my", "our", "your",
}


def _words(theme: str) -> list[str]:
    return [w for w in re.findall(r"[a-z][a-z0-9'-]*", theme.lower()) if w not in _STOPWORDS]


def _clean(theme: str) -> str:
    return " ".join(str(theme).split()) or "imaginary landscapes"


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def shot_seed_of(sequence_id: str, index: int) -> int:
    """The render seed of shot ``index`` of a sequence: fixed by the sequence's id."""
    return int.from_bytes(hashlib.sha256(f"{sequence_id}:{index}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def _categories(words: list[str], table: dict[str, tuple[str, ...]]) -> list[str]:
    return [name for name, keys in table.items() if any(w in keys for w in words)]


class OfflineDirector:
    """Writes sequences from built-in vocabularies; no model, no network. With a
    ``subject_weight`` other than 1 the character is written weighted, ``(a lone fox:1.3)``
    (``webtv.prompt_weights``), for the models that read weights."""

    def __init__(self, subject_weight: float = 1.0) -> None:
        self.state = DirectorState(backend="offline")
        self.subject_weight = subject_weight

    async def aclose(self) -> None:
        """Nothing to let go of: the offline writer holds no connection."""

    @staticmethod
    def details(theme: str, seed: int) -> dict[str, str]:
        """What stays fixed across a sequence: character, setting, light, style and music mood."""
        theme = _clean(theme)
        rng = _rng("sequence", theme, seed)
        words = _words(theme)
        cats = _categories(words, _KEYWORDS)
        pool = cats if cats and rng.random() < 0.85 else ["any"] + cats
        category = rng.choice(pool)
        setting = rng.choice(_SETTINGS[category])
        character = rng.choice(_CHARACTERS[category] + (_CHARACTERS["any"] if rng.random() < 0.3 else []))
        style_tag, style = rng.choice(_STYLES)
        light = rng.choice(_NIGHT_LIGHTS if any(w in _NIGHT_WORDS for w in words) else _LIGHTS)
        moods = _categories(words, _MOODS)
        mood = rng.choice(moods) if moods else rng.choice(sorted(_MUSIC))
        return {
            "character": character,
            "setting": setting,
            "light": light,
            "style": style,
            "style_tag": style_tag,
            "mood": mood,
        }

    async def write_sequence(self, theme: str, shots: int, seed: int) -> Sequence:
        sequence = self.write(theme, shots, seed)
        self.state.sequences += 1
        self.state.last_ok_at = time.time()
        return sequence

    async def write_episode(self, theme: str, shots: int, seed: int, brief: EpisodeBrief) -> Sequence:
        from webtv.director.story import write_episode  # it builds on this module's vocabularies

        sequence = write_episode(theme, shots, seed, brief)
        self.state.sequences += 1
        self.state.last_ok_at = time.time()
        return sequence

    def write(self, theme: str, shots: int, seed: int) -> Sequence:
        """The same as ``write_sequence``, callable without an event loop."""
        theme = _clean(theme)
        shots = max(1, int(shots))
        plan = self.details(theme, seed)
        character, setting, light = plan["character"], plan["setting"], plan["light"]
        style_tag, style, mood = plan["style_tag"], plan["style"], plan["mood"]
        rng = _rng("actions", theme, seed)
        words = _words(theme)
        genre, tempo, instruments = _MUSIC[mood]
        music_prompt = f"{genre}, {tempo}, {instruments}, {mood} mood"

        seq_id = "seq-" + hashlib.sha256(f"{theme}\x1f{seed}".encode("utf-8")).hexdigest()[:12]
        theme_words = [w for w in words if len(w) > 2][:4]
        tags = tuple(dict.fromkeys(theme_words + [style_tag, mood]))

        actions = rng.sample(_ACTIONS, k=min(shots, len(_ACTIONS)))
        out: list[Shot] = []
        last_move = None
        for index in range(shots):
            srng = _rng("shot", theme, seed, index)
            framing = _FRAMINGS[0] if index == 0 and srng.random() < 0.5 else srng.choice(_FRAMINGS)
            action = actions[index % len(actions)]
            move = srng.choice([m for m in _MOVES if m != last_move])
            last_move = move
            camera = f"{srng.choice(_SPEEDS)} {move}"
            subject = weighted(character, self.subject_weight)
            prompt = f"{framing} of {subject} {action}, {setting}, {theme}, {light}, {style}, {camera}"
            shot_seed = shot_seed_of(seq_id, index)
            out.append(
                Shot(
                    prompt=prompt,
                    seed=shot_seed,
                    theme=theme,
                    tags=tags,
                    sequence_id=seq_id,
                    index=index,
                )
            )
        return Sequence(
            id=seq_id,
            theme=theme,
            music_prompt=music_prompt,
            seed=seed,
            tags=tags,
            shots=tuple(out),
        )
