"""What a reply to the line asks: opt out (11, لغو, stop), opt back in (12), or something else."""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

from pipeline.persian import en_digits, normalise_text

# Compared once every mark, space, punctuation and symbol is gone: «لغو ۱۱» and «11 لغو» too.
OPT_OUT_WORDS = frozenset({"11", "لغو", "لغو11", "11لغو", "cancel", "stop", "off"})
OPT_IN_WORDS = frozenset({"12"})

# In a longer reply: لغو anywhere (Persian glues it to the next word: «لغوکنید»), the Latin
# words and 11 only as whole words, so "office" or a phone number holding 11 is not flagged.
_MENTION = re.compile(r"لغو|(?<![a-z0-9])(?:11|cancel|stop|off)(?![a-z0-9])")
_TATWEEL = "\u0640"  # a letter to Unicode (Lm), only a stretch to the reader
_KEPT = ("L", "N")  # Unicode categories kept: letters and digits; marks, ZWNJ, space... go


class Word(StrEnum):
    """The class of one reply's text."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    MENTIONS_OPT_OUT = "mentions_opt_out"  # a sentence with an opt-out word: a person reads it
    OTHER = "other"


def classify(text: str) -> Word:
    """The class of a reply: the whole text one opt-out or opt-in word, or else what it holds."""
    compact = "".join(c for c in _folded(text) if unicodedata.category(c)[0] in _KEPT)
    if compact in OPT_OUT_WORDS:
        return Word.OPT_OUT
    if compact in OPT_IN_WORDS:
        return Word.OPT_IN
    if _MENTION.search(_spaced(text)):
        return Word.MENTIONS_OPT_OUT
    return Word.OTHER


def _folded(text: str) -> str:
    """One spelling: compatibility forms (ﻟﻐﻮ, full-width ５) as plain letters, Persian and
    Arabic digits as 0-9, Arabic ي/ك as Persian ی/ک, no tatweel (the stretching «لغـــو»),
    casefolded."""
    folded = normalise_text(en_digits(unicodedata.normalize("NFKC", text)))
    return folded.replace(_TATWEEL, "").casefold()


def _spaced(text: str) -> str:
    """Words apart by one space; format characters (ZWNJ) dropped, joining what they split."""
    kept = []
    for char in _folded(text):
        kind = unicodedata.category(char)[0]
        if kind in _KEPT:
            kept.append(char)
        elif kind != "M" and unicodedata.category(char) != "Cf":  # a mark stays in its word
            kept.append(" ")
    return " ".join("".join(kept).split())
