"""Readable text for figures and tables: characters the plotting font cannot draw, shown by code point.

A weak model's masked-word predictions can be any WordPiece of the vocabulary: CJK characters, symbols,
scripts that matplotlib's font (DejaVu Sans by default) has no glyph for and would draw as an empty box.
:func:`readable_text` keeps every character the font can draw and writes each other one as its code point
(``中`` -> ``U+4E2D``). Whether a character can be drawn is read from the fonts matplotlib itself uses for
text (its font manager's choice for the current ``font.family``, fallbacks included, and each font's
character map), never from a fixed list of ranges.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any


def text_fonts(prop: Any = None) -> tuple[Any, ...]:
    """The font files matplotlib draws text with for the font properties ``prop`` (default: the current
    ``font.family`` settings), in fallback order."""
    from matplotlib import font_manager

    prop = font_manager.FontProperties() if prop is None else prop
    finder = getattr(font_manager.fontManager, "_find_fonts_by_props", None)  # matplotlib >= 3.6: fallbacks
    if finder is not None:
        return tuple(finder(prop))
    return (font_manager.findfont(prop),)


@lru_cache(maxsize=65536)
def _drawable(fonts: tuple[Any, ...], char: str) -> bool:
    from matplotlib import font_manager

    if char.isspace() and char.isprintable():
        return True  # a plain space needs no glyph
    return any(font_manager.get_font(font).get_char_index(ord(char)) != 0 for font in fonts)


def drawable(char: str, fonts: Sequence[Any] | None = None) -> bool:
    """Whether the plotting font (or any of ``fonts``, font file paths) has a glyph for ``char``."""
    if len(char) != 1:
        raise ValueError(f"drawable: char={char!r}: expected a single character")
    return _drawable(tuple(text_fonts() if fonts is None else fonts), char)


def code_point(char: str) -> str:
    """``U+4E2D`` for ``中``."""
    return f"U+{ord(char):04X}"


def readable_text(text: str, fonts: Sequence[Any] | None = None) -> str:
    """``text`` with every character the plotting font cannot draw written as its code point.

    Code points of neighbouring characters are separated by a space, and from a neighbouring letter or digit
    by a space too, so that they stay unambiguous: ``中`` -> ``U+4E2D``, ``##中`` -> ``##U+4E2D``, ``中国`` ->
    ``U+4E2D U+56FD``, ``a中b`` -> ``a U+4E2D b``. Text the font draws entirely is returned unchanged.
    """
    if not isinstance(text, str):
        raise TypeError(f"readable_text: text={text!r}: expected a str")
    chain = tuple(text_fonts() if fonts is None else fonts)
    parts: list[tuple[str, bool]] = [(c, True) if _drawable(chain, c) else (code_point(c), False) for c in text]
    out = ""
    for index, (part, kept) in enumerate(parts):
        if index:
            previous, previous_kept = parts[index - 1]
            if not kept and (not previous_kept or previous[-1].isalnum()):
                out += " "
            elif kept and not previous_kept and part.isalnum():
                out += " "
        out += part
    return out


def plot_text(text: str, fonts: Sequence[Any] | None = None) -> str:
    """:func:`readable_text` for a matplotlib label: dollar signs escaped too, so that a predicted ``$``
    piece is drawn as itself and never parsed as mathtext."""
    return readable_text(text, fonts).replace("$", r"\$")
