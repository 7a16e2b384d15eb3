"""Closed answer vocabularies and answer extraction from free text.

BABEL-QA answers are one concept of a closed vocabulary, picked by the query type of the question:

* **actions** (55): the `non_ambiguous_actions` list of the BABEL-QA generator (markendo/HumanMotionQA,
  `BABEL-QA/extract_motion_concepts.py`, 57 categories plus `transition`), after the generator's own merges
  (`hop` -> `jump`, `lift something` -> `take/pick something up`) and without `transition`, which is never
  asked for. 57 - 2 merged = 55, the count the LLaMo paper gives. (Not every action survives the generator's
  later filtering into the released split; the vocabulary is a superset of the answers that occur.)
* **body parts** (8): left/right hand, arm, leg, foot.
* **directions** (4): left, right, forward, backwards (the generator folds forwards -> forward and
  backward -> backwards).

The canonical spellings above are exactly the `answer` strings of BABEL-QA's `questions.json`, so scoring is
an exact string match between the extracted canonical concept and the gold answer.

Extraction (`extract_choice`) works on normalised word stems so that plural/singular and verb inflections
match ("walks", "walking", "walked" -> walk; "feet" -> foot; "backward"/"backwards"/"back" -> backwards). All
aliases of every concept of every vocabulary are matched at once, left to right, longest alias first, so
"left hand" is a body part and not the direction "left", "jumping jacks" is not "jump", and "back and forth"
is not a direction. Among the concepts of the requested vocabulary the earliest mention wins, except that

* mentions inside a negation scope ("not X", "rather than X", "instead of X", "isn't X", up to the next
  clause break) are skipped: "not walking but running" -> run; an answer that only negates gives None;
* concepts listed in `avoid` (the harness passes the concepts that the *question* mentions, which in BABEL-QA
  can never be the answer: the generator never queries a filter concept) are used only when nothing else
  matches, so a model that echoes the question ("before they walk, the person jumps") is read correctly.

`extract_count` reads repetition counts: digits, number words (zero..ninety-nine, "a dozen"), "once",
"twice", "thrice", "a couple of times"; counts marked by "times"/"reps"/"x" are preferred over bare numbers,
and numbers followed by units (seconds, frames, fps, meters, percent, degrees...) or used as a pronoun
("the one on the left") are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "ACTIONS",
    "ACTION_VOCAB",
    "BABEL_QA_VOCABULARIES",
    "BODY_PARTS",
    "BODY_PART_VOCAB",
    "DIRECTIONS",
    "DIRECTION_VOCAB",
    "Vocabulary",
    "count_in_words",
    "extract_choice",
    "extract_count",
    "find_mentions",
    "normalize_text",
    "stem",
    "vocabulary_for_query_type",
]

# --------------------------------------------------------------------------------------------------------------
# Vocabularies
# --------------------------------------------------------------------------------------------------------------

ACTIONS: tuple[str, ...] = (
    "bow",
    "cartwheel",
    "catch",
    "clap",
    "cough",
    "crawl",
    "crouch",
    "dribble",
    "drink",
    "duck",
    "eat",
    "fall",
    "fight",
    "fire gun",
    "fish",
    "fist bump",
    "flail arms",
    "flap",
    "flip",
    "golf",
    "handstand",
    "hug",
    "jog",
    "juggle",
    "jump",
    "jump rope",
    "jumping jacks",
    "kick",
    "kneel",
    "knock",
    "leap",
    "limp",
    "lunge",
    "march",
    "mix",
    "moonwalk",
    "place something",
    "punch",
    "rake",
    "run",
    "salute",
    "shuffle",
    "sit",
    "skate",
    "skip",
    "sneeze",
    "squat",
    "stand up",
    "take/pick something up",
    "throw",
    "tie",
    "tiptoe",
    "walk",
    "wave",
    "yawn",
)
BODY_PARTS: tuple[str, ...] = (
    "left hand",
    "right hand",
    "left arm",
    "right arm",
    "left leg",
    "right leg",
    "left foot",
    "right foot",
)
DIRECTIONS: tuple[str, ...] = ("left", "right", "forward", "backwards")

# Extra surface forms per canonical concept (the canonical form itself is always an alias). Inflections need no
# entry: matching is on stems.
_ACTION_ALIASES: dict[str, tuple[str, ...]] = {
    "jump": ("hop", "jump up", "jump in place"),
    "take/pick something up": (
        "take something up",
        "pick something up",
        "pick up",
        "pick it up",
        "pick up something",
        "lift something",
        "lift",
        "lift up",
        "pick",
        "grab",
        "take something",
    ),
    "place something": (
        "put something down",
        "put down",
        "put it down",
        "set down",
        "place",
        "put",
    ),
    "fire gun": ("fire a gun", "shoot a gun", "shoot gun", "shoot", "fire"),
    "fist bump": ("bump fists", "fist pump"),
    "flail arms": ("flail", "flail their arms", "flail his arms", "flail her arms"),
    "flap": ("flap arms", "flap their arms", "flap his arms", "flap her arms"),
    "jump rope": ("skip rope", "skipping rope", "rope skipping", "jumping rope"),
    "jumping jacks": ("jumping jack", "star jump"),
    "stand up": ("stand", "get up", "rise"),
    "sit": ("sit down",),
    "tiptoe": (
        "tip toe",
        "tiptoes",
        "walk on tiptoe",
        "walk on tiptoes",
        "walk on tip toes",
        "on tiptoe",
    ),
    "moonwalk": ("moon walk",),
    "cartwheel": ("cart wheel",),
    "handstand": ("hand stand",),
    "flip": ("somersault", "backflip", "back flip", "frontflip", "front flip"),
    "run": ("sprint",),
    "walk": ("stroll",),
    "clap": ("applaud",),
    "throw": ("toss",),
    "hug": ("embrace",),
    "fight": ("spar",),
    "drink": ("sip",),
    "mix": ("stir",),
    "golf": ("golf swing", "swing a golf club"),
    "fish": ("cast a fishing rod",),
    "kneel": ("kneel down", "get on knees"),
    "bow": ("bow down",),
    "fall": ("fall down",),
    "skate": ("ice skate",),
}

_DIRECTION_ALIASES: dict[str, tuple[str, ...]] = {
    "left": ("leftward", "leftwards", "to the left", "left side", "sideways left"),
    "right": (
        "rightward",
        "rightwards",
        "to the right",
        "right side",
        "sideways right",
    ),
    "forward": (
        "forwards",
        "ahead",
        "frontward",
        "frontwards",
        "straight ahead",
        "front",
    ),
    "backwards": (
        "backward",
        "back",
        "backwards",
        "rearward",
        "rearwards",
        "in reverse",
        "reverse",
    ),
}

_SIDES = ("left", "right")
_PARTS = ("hand", "arm", "leg", "foot")


def _body_part_aliases(side: str, part: str) -> tuple[str, ...]:
    return (
        f"{side} {part}",
        f"{part} {side}",  # "arm left", "hand (left)"
        f"{side} side {part}",
        f"{part} on the {side}",
        f"{part} on his {side}",
        f"{part} on her {side}",
        f"{part} on their {side}",
        f"{side}-{part}",
        f"{side} handed" if part == "hand" else f"{side} {part}",
    )


# Phrases that look like a concept but are not one; matched like concepts and then discarded, so they consume
# their words ("back and forth" is no direction, "right away" no side).
_DISTRACTORS: tuple[str, ...] = (
    "back and forth",
    "forth and back",
    "on his back",
    "on her back",
    "on their back",
    "on the back",
    "lower back",
    "upper back",
    "back of",
    "right away",
    "right now",
    "all right",
    "that s right",
    "left over",
    "left behind",
    "his back",
    "her back",
    "their back",
    "in front of",
    "from the front",
)


@dataclass(frozen=True)
class Vocabulary:
    """A closed answer vocabulary: canonical concepts with their surface aliases."""

    name: str
    concepts: tuple[str, ...]
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def surface_forms(self, concept: str) -> tuple[str, ...]:
        return (concept,) + tuple(self.aliases.get(concept, ()))

    def __contains__(self, concept: str) -> bool:
        return concept in self.concepts

    def __len__(self) -> int:
        return len(self.concepts)

    def extended(self, concepts) -> "Vocabulary":
        """This vocabulary plus `concepts` (e.g. a synthetic suite's actions that BABEL-QA's 55 lack)."""
        new = tuple(c for c in dict.fromkeys(concepts) if c not in self.concepts)
        return Vocabulary(self.name, self.concepts + new, dict(self.aliases)) if new else self


ACTION_VOCAB = Vocabulary("action", ACTIONS, dict(_ACTION_ALIASES))
BODY_PART_VOCAB = Vocabulary(
    "body_part",
    BODY_PARTS,
    {bp: _body_part_aliases(*bp.split(" ")) for bp in BODY_PARTS},
)
DIRECTION_VOCAB = Vocabulary("direction", DIRECTIONS, dict(_DIRECTION_ALIASES))
BABEL_QA_VOCABULARIES: dict[str, Vocabulary] = {
    "action": ACTION_VOCAB,
    "body_part": BODY_PART_VOCAB,
    "direction": DIRECTION_VOCAB,
}


def vocabulary_for_query_type(query_type: str) -> Vocabulary:
    """`query_action` / `action` -> the action vocabulary, and so on."""
    key = query_type.removeprefix("query_")
    try:
        return BABEL_QA_VOCABULARIES[key]
    except KeyError:
        raise ValueError(
            f"Unknown BABEL-QA query type {query_type!r}; expected one of {sorted(BABEL_QA_VOCABULARIES)}."
        )


# --------------------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------------------

_IRREGULAR = {
    "ran": "run",
    "sat": "sit",
    "stood": "stand",
    "threw": "throw",
    "thrown": "throw",
    "caught": "catch",
    "fell": "fall",
    "fallen": "fall",
    "ate": "eat",
    "eaten": "eat",
    "drank": "drink",
    "drunk": "drink",
    "fought": "fight",
    "knelt": "kneel",
    "leapt": "leap",
    "feet": "foot",
    "took": "take",
    "taken": "take",
    "tying": "tie",
    "lying": "lie",
    "dying": "die",
    "got": "get",
    "rose": "rise",
    "risen": "rise",
    "put": "put",
    "backwards": "backward",
    "forwards": "forward",
    "towards": "toward",
    "knees": "knee",
    "toes": "toe",
    "tiptoes": "tiptoe",
    "does": "do",
    "did": "do",
    "done": "do",
    "his": "his",
    "this": "this",
    "was": "was",
    "is": "is",
    "has": "has",
    "as": "as",
    "us": "us",
    "yes": "yes",
    "its": "its",
}

_VOWELS = set("aeiouy")


def stem(word: str) -> str:
    """A tiny, deterministic stemmer: the same stem for a word's plural/3rd-person/-ing/-ed forms.

    It only has to map a concept alias and its inflections onto one key; it need not produce real words
    ("wave", "waves", "waving", "waved" -> "wav").
    """
    w = word.lower()
    if w in _IRREGULAR:
        w = _IRREGULAR[w]
        return w[:-1] if len(w) > 2 and w.endswith("e") else w
    suffix_removed = False
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 5 and w.endswith("ing"):
        w, suffix_removed = w[:-3], True
    elif len(w) > 3 and w.endswith("ed"):
        w, suffix_removed = w[:-2], True
    elif len(w) > 3 and w.endswith(("ches", "shes", "sses", "xes", "zes")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if suffix_removed and len(w) > 2 and w[-1] == w[-2] and w[-1] not in _VOWELS and w[-1] not in "lsz":
        w = w[:-1]  # running -> runn -> run
    if len(w) > 2 and w.endswith("e"):
        w = w[:-1]  # wave/waving/waved -> wav
    return w


_TOKEN_RE = re.compile(r"[a-z]+|\d+(?:\.\d+)?|[.,;:!?]")
_CLAUSE_BREAKS = {
    ".",
    ",",
    ";",
    ":",
    "!",
    "?",
    "but",
    "instead",
    "rather",
    "however",
    "while",
    "whereas",
    "although",
    "though",
    "then",
    "so",
}


def normalize_text(text: str) -> str:
    """Lowercase, split "n't" and "'s", drop brackets/quotes, turn "/", "-", "_" into spaces, collapse spaces."""
    t = text.lower()
    t = t.replace("\u2019", "'").replace("\u2018", "'").replace("\u2013", "-").replace("\u2014", " - ")
    t = re.sub(r"n't\b", " not", t)
    t = t.replace("cannot", "can not")
    t = re.sub(r"'s\b", " s", t)
    t = re.sub(r"[/\-_]", " ", t)
    t = re.sub(r"[^a-z0-9.,;:!?% ]+", " ", t)  # brackets and quotes go: "arm (left)" reads as "arm left"
    return re.sub(r"\s+", " ", t).strip()


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(normalize_text(text))


def _alias_key(alias: str) -> tuple[str, ...]:
    return tuple(stem(tok) for tok in _TOKEN_RE.findall(normalize_text(alias)))


# --------------------------------------------------------------------------------------------------------------
# Choice extraction
# --------------------------------------------------------------------------------------------------------------

_NEGATORS = {"not", "no", "never", "neither", "nor", "without"}
_NEGATING_PHRASES = (
    ("rather", "than"),
    ("instead", "of"),
    ("other", "than"),
    ("as", "opposed", "to"),
    ("except",),
)
_NEGATION_WINDOW = 5  # a negation covers at most this many words, and never crosses a clause break


@dataclass(frozen=True)
class Mention:
    """One concept mention in a text: token span, concept, vocabulary name and whether it is negated."""

    start: int
    end: int
    concept: str
    vocabulary: str
    negated: bool


_ALL_VOCABS: tuple[Vocabulary, ...] = (ACTION_VOCAB, BODY_PART_VOCAB, DIRECTION_VOCAB)


def _alias_table(vocabularies) -> list[tuple[tuple[str, ...], str, str]]:
    table = {}
    for vocab in vocabularies:
        for concept in vocab.concepts:
            for alias in vocab.surface_forms(concept):
                key = _alias_key(alias)
                if key and key not in table:
                    table[key] = (concept, vocab.name)
    for phrase in _DISTRACTORS:
        key = _alias_key(phrase)
        table.setdefault(key, (None, "distractor"))
    # longest first: at one position the most specific alias wins
    return sorted(((k, c, v) for k, (c, v) in table.items()), key=lambda row: -len(row[0]))


_TABLE_CACHE: dict[tuple[int, ...], tuple] = {}


def _table_for(vocabulary: Vocabulary):
    """Alias table over the BABEL-QA vocabularies, a custom `vocabulary` replacing the one of the same name."""
    if any(vocabulary is v for v in _ALL_VOCABS):
        vocabs = _ALL_VOCABS
    else:
        vocabs = (vocabulary,) + tuple(v for v in _ALL_VOCABS if v.name != vocabulary.name)
    key = tuple(id(v) for v in vocabs)
    if key not in _TABLE_CACHE:
        _TABLE_CACHE[key] = (
            vocabs,
            _alias_table(vocabs),
        )  # keep the objects alive so ids stay unique
    return _TABLE_CACHE[key][1]


def _negated_positions(tokens: list[str]) -> set[int]:
    negated = set()
    for i, tok in enumerate(tokens):
        start = None
        if tok in _NEGATORS:
            start = i + 1
        else:
            for phrase in _NEGATING_PHRASES:
                if tuple(tokens[i : i + len(phrase)]) == phrase:
                    start = i + len(phrase)
                    break
        if start is None:
            continue
        for j in range(start, min(start + _NEGATION_WINDOW, len(tokens))):
            if tokens[j] in _CLAUSE_BREAKS:
                break
            negated.add(j)
    return negated


def find_mentions(text: str, vocabulary: Vocabulary | None = None) -> list[Mention]:
    """All concept mentions in `text`, left to right, non-overlapping, longest alias first at each position.

    Mentions of every BABEL-QA vocabulary are returned (and of `vocabulary`, if it is a custom one); distractor
    phrases consume their words but are not returned.
    """
    table = _table_for(vocabulary or ACTION_VOCAB)
    tokens = _tokens(text)
    stems = [stem(t) for t in tokens]
    negated = _negated_positions(tokens)
    mentions, i = [], 0
    while i < len(stems):
        for key, concept, vocab_name in table:
            n = len(key)
            if tuple(stems[i : i + n]) == key:
                if concept is not None:
                    mentions.append(
                        Mention(
                            i,
                            i + n,
                            concept,
                            vocab_name,
                            any(j in negated for j in range(i, i + n)),
                        )
                    )
                i += n
                break
        else:
            i += 1
    return mentions


def extract_choice(text: str | None, vocabulary: Vocabulary, avoid=()) -> str | None:
    """The canonical concept of `vocabulary` that `text` answers with, or None when it names none.

    Earliest non-negated mention of a concept of `vocabulary`, skipping concepts in `avoid` unless nothing else
    is mentioned. Longest alias wins at a position ("left foot" over "left"). See the module docstring.
    """
    if not text:
        return None
    avoid = set(avoid)
    candidates = [m for m in find_mentions(text, vocabulary) if m.vocabulary == vocabulary.name and not m.negated]
    for mention in candidates:
        if mention.concept not in avoid:
            return mention.concept
    return candidates[0].concept if candidates else None


# --------------------------------------------------------------------------------------------------------------
# Count extraction
# --------------------------------------------------------------------------------------------------------------

_UNITS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_WORD_NUMBERS = {w: i for i, w in enumerate(_UNITS)} | dict(_TENS) | {"dozen": 12, "none": 0}


def count_in_words(count: int) -> str:
    """`7` -> "seven", `23` -> "twenty-three" (0..99): the spelling `extract_count` reads back.

    Training targets can spell counts out because a digit tokenizer writes 10, 11 and 12 as two tokens that start
    with "1", so the first answer token of a count cannot tell 1 from 10-12 and greedy decoding favours that
    shared token; SmolLM2's "one" ... "ten" are single tokens and "eleven", "twelve" start with tokens of their own."""
    count = int(count)
    if not 0 <= count < 100:
        raise ValueError(f"count_in_words spells 0..99, got {count}")
    if count < len(_UNITS):
        return _UNITS[count]
    tens = next(word for word, value in _TENS.items() if value == count // 10 * 10)
    return tens if count % 10 == 0 else f"{tens}-{_UNITS[count % 10]}"


_ADVERB_COUNTS = {"once": 1, "twice": 2, "thrice": 3}
_COUNT_MARKERS = {
    "times",
    "time",
    "x",
    "reps",
    "rep",
    "repetitions",
    "repetition",
    "repeats",
    "cycles",
    "cycle",
    "rounds",
    "round",
    "counts",
    "iterations",
}
_NOT_COUNT_UNITS = {
    "second",
    "seconds",
    "sec",
    "secs",
    "s",
    "ms",
    "minute",
    "minutes",
    "min",
    "mins",
    "hour",
    "hours",
    "frame",
    "frames",
    "fps",
    "hz",
    "meter",
    "meters",
    "metre",
    "metres",
    "m",
    "cm",
    "mm",
    "km",
    "feet",
    "ft",
    "inch",
    "inches",
    "percent",
    "%",
    "degree",
    "degrees",
    "deg",
    "kg",
    "kilograms",
    "lbs",
    "pounds",
    "years",
    "year",
    "am",
    "pm",
    "o",
    "th",
    "st",
    "nd",
    "rd",
    "point",
    "people",
    "persons",
    "person",
}
_PRONOUN_ONE_PREV = {
    "the",
    "this",
    "that",
    "each",
    "which",
    "every",
    "no",
    "any",
    "another",
    "someone",
    "some",
    "a",
    "little",
    "only",
}
_PRONOUN_ONE_NEXT = {
    "of",
    "leg",
    "legs",
    "foot",
    "hand",
    "hands",
    "arm",
    "arms",
    "side",
    "another",
    "by",
    "on",
    "in",
    "at",
    "direction",
    "knee",
    "way",
}
_COUNT_TOKEN_RE = re.compile(r"[a-z]+|\d+(?:\.\d+)?|%|[.,;:!?]")


def _parse_number_at(tokens: list[str], i: int):
    """(value, tokens consumed) for a number starting at tokens[i], else None."""
    tok = tokens[i]
    if re.fullmatch(r"\d+(?:\.\d+)?", tok):
        value = float(tok)
        return (int(value) if value.is_integer() else value), 1
    if tok in _TENS:
        if i + 1 < len(tokens) and tokens[i + 1] in _UNITS[1:10]:
            return _TENS[tok] + _UNITS.index(tokens[i + 1]), 2
        return _TENS[tok], 1
    if tok == "dozen" and i > 0 and tokens[i - 1] in ("a", "one"):
        return 12, 1
    if tok in _WORD_NUMBERS and tok not in ("dozen", "none"):
        return _WORD_NUMBERS[tok], 1
    return None


def extract_count(text: str | None) -> int | None:
    """The repetition count a free-text answer gives, or None.

    Preference order: a number marked as a count ("3 times", "three reps", "5x", "once", "twice"), then any
    other number that is not followed by a unit and is not the pronoun "one". Negated counts ("not 3 but 4
    times") are skipped. Decimals are rounded to the nearest integer. "zero"/"no times"/"never" give 0 only
    when marked ("zero times", "0 times") or alone.
    """
    if not text:
        return None
    t = normalize_text(text).replace("-", " ")
    t = re.sub(r"(\d)x\b", r"\1 x", t)  # "5x" -> "5 x"
    tokens = _COUNT_TOKEN_RE.findall(t)
    negated = _negated_positions(tokens)
    marked, bare = [], []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _ADVERB_COUNTS:
            if i not in negated:
                marked.append(_ADVERB_COUNTS[tok])
            i += 1
            continue
        if tok == "couple" and i + 2 < len(tokens) and tokens[i + 1] == "of" and tokens[i + 2] in ("times", "reps"):
            if i not in negated:
                marked.append(2)
            i += 3
            continue
        parsed = _parse_number_at(tokens, i)
        if parsed is None:
            i += 1
            continue
        value, used = parsed
        nxt = tokens[i + used] if i + used < len(tokens) else ""
        prev = tokens[i - 1] if i > 0 else ""
        value = round(value)
        if i in negated:
            pass
        elif nxt in _COUNT_MARKERS:
            marked.append(value)
        elif (
            nxt in _NOT_COUNT_UNITS
            or prev in ("frame", "at", "minute", "second", "step", "number", "no", "page")
            or tok == "one"
            and (prev in _PRONOUN_ONE_PREV or nxt in _PRONOUN_ONE_NEXT)
        ):
            pass
        else:
            bare.append(value)
        i += used
    if marked:
        return marked[0]
    if bare:
        return bare[0]
    return None
