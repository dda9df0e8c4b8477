"""Word classes for choosing cloze words: a small lexicon plus suffix rules.

The lexicon covers the built-in corpus completely (shapes are nouns, colours and sizes adjectives,
directions adverbs, the motion and event verbs verbs) and a few hundred common words of video captions;
other words are classified by their ending (``-ing``/``-ed``: verb, ``-ly``: adverb, ``-ous``/``-ful``/...:
adjective, otherwise noun). Function words (articles, pronouns, prepositions, auxiliaries, conjunctions)
are never chosen by default.
"""

from __future__ import annotations

from ..data.corpus import COLOURS, DIRECTIONS, SHAPES, SIZES

WORD_CLASSES: tuple[str, ...] = ("noun", "verb", "adjective", "adverb", "function")
WORD_KINDS: tuple[str, ...] = ("shape", "colour", "size", "direction", "event")

CORPUS_VERBS: tuple[str, ...] = (
    "move", "moves", "moving", "moved", "go", "goes", "going", "went", "turn", "turns", "turning", "turned",
    "appear", "appears", "appearing", "appeared", "disappear", "disappears", "disappearing", "disappeared",
)  # fmt: skip

FUNCTION_WORDS: frozenset[str] = frozenset(
    """a an the this that these those some any each every no all both either neither
    i you he she it we they me him her us them my your his its our their mine yours ours theirs
    and or but nor so yet if then than because while when where whereas although though
    of in on at by for with from to into onto over under above below between among through across
    about around behind beside near toward towards upon within without off out along past
    is am are was were be been being do does did done have has had having will would shall should
    can could may might must not
    there here who whom whose which what how why
    one two three four five six seven eight nine ten""".split()
)

COMMON_NOUNS: frozenset[str] = frozenset(
    """man men woman women person people guy girl boy child children kid kids baby family friend friends
    crowd team player players dog dogs cat cats bird birds horse rabbit bunny animal animals fish cow sheep
    car cars bike bikes bicycle bus truck train boat plane road street city building house room kitchen
    table chair bed door window wall floor ground grass tree trees forest field garden park beach sea ocean
    river lake water sky sun cloud clouds snow rain mountain hill rock sand phone camera computer screen
    ball game food plate cup glass bottle hand hands head face hair eye eyes arm arms leg legs shirt hat
    dress guitar piano music song video picture view scene stage light lights fire shape object thing
    circle square triangle rectangle line box""".split()
)

COMMON_VERBS: frozenset[str] = frozenset(
    """walk walks walked walking run runs ran running jump jumps jumped jumping sit sits sat sitting stand
    stands stood standing talk talks talked talking speak speaks spoke speaking ride rides rode riding drive
    drives drove driving wave waves waved waving play plays played playing dance dances danced dancing sing
    sings sang singing eat eats ate eating drink drinks drank drinking cook cooks cooked cooking swim swims
    swam swimming fly flies flew flying fall falls fell falling hold holds held holding look looks looked
    looking watch watches watched watching smile smiles smiled smiling laugh laughs laughed laughing throw
    throws threw throwing catch catches caught catching open opens opened opening close closes closed
    closing show shows showed showing make makes made making take takes took taking put puts put putting
    give gives gave giving cut cuts cutting climb climbs climbed climbing push pushes pushed pushing pull
    pulls pulled pulling carry carries carried carrying enter enters entered exit exits leave leaves
    rotate rotates rotating spin spins spinning roll rolls rolled rolling bounce bounces bounced bouncing
    slide slides sliding change changes changed changing""".split()
) | frozenset(CORPUS_VERBS)

COMMON_ADJECTIVES: frozenset[str] = frozenset(
    """small big large little tall short long young old new good bad happy sad beautiful pretty nice
    white black grey gray brown orange pink dark bright light green red blue yellow purple
    hot cold warm wet dry empty full open closed fast slow high low""".split()
) | frozenset(COLOURS) | frozenset(SIZES)

DIRECTION_WORDS: frozenset[str] = frozenset(DIRECTIONS) | frozenset(
    "upward upwards downward downwards leftward leftwards rightward rightwards forward forwards backward backwards away".split()
)

ADJECTIVE_SUFFIXES: tuple[str, ...] = ("ous", "ful", "ive", "able", "ible", "ical", "less", "ish", "ic")


def word_kind(word: str) -> str | None:
    """The corpus meaning of ``word``: ``shape``, ``colour``, ``size``, ``direction``, ``event`` (a motion or
    event verb of the corpus) or None."""
    w = word.lower()
    if w in SHAPES:
        return "shape"
    if w in COLOURS:
        return "colour"
    if w in SIZES:
        return "size"
    if w in DIRECTIONS:
        return "direction"
    if w in CORPUS_VERBS:
        return "event"
    return None


def word_class(word: str) -> str:
    """``noun``, ``verb``, ``adjective``, ``adverb`` or ``function`` (also for punctuation and numbers).

    Lexicon first, with the corpus words: shapes nouns, colours and sizes adjectives, directions adverbs
    ("moves left"), the corpus verbs verbs. Unknown words: ``-ing``/``-ed`` verb, ``-ly`` adverb, common
    adjective endings adjective, anything else noun.
    """
    w = word.lower()
    if not w or not any(c.isalpha() for c in w) or w in FUNCTION_WORDS:
        return "function"
    if w in DIRECTION_WORDS:
        return "adverb"
    if w in COMMON_ADJECTIVES:
        return "adjective"
    if w in COMMON_VERBS:
        return "verb"
    if w in COMMON_NOUNS or w in SHAPES:
        return "noun"
    if len(w) > 4 and (w.endswith("ing") or w.endswith("ed")):
        return "verb"
    if len(w) > 3 and w.endswith("ly"):
        return "adverb"
    if len(w) > 4 and w.endswith(ADJECTIVE_SUFFIXES):
        return "adjective"
    return "noun"


def is_default_cloze_word(word: str) -> bool:
    """Words masked by default, as in the paper's Fig. 6: nouns and verbs."""
    return word_class(word) in ("noun", "verb")
