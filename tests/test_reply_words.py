"""The word rules of replies: 11 / لغو / stop opt out, 12 opts back in, the rest is read by a
person (flagged when it mentions opting out)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.reply_words import Word, classify

ZWNJ = "\u200c"
PERSIAN = dict(zip("0123456789", "۰۱۲۳۴۵۶۷۸۹", strict=True))
ARABIC = dict(zip("0123456789", "٠١٢٣٤٥٦٧٨٩", strict=True))


@pytest.mark.parametrize(
    "text",
    [
        "11", "۱۱", "١١", "۱1", "لغو", "لغو ۱۱", "لغو۱۱", f"لغو{ZWNJ}۱۱", "۱۱ لغو", "«لغو ۱۱»",
        " 11 ", "11.", "STOP", "Stop", "stop!", "Off", "OFF", "cancel", "CANCEL", "لغو\n۱۱",
        "ﻟﻐﻮ",  # Arabic presentation forms (some keyboards, copy-paste from PDFs)
        "لغـــو",  # tatweel, the stretching stroke
        "１１",  # full-width digits
        "\u200f۱۱\u200e",  # direction marks around it
        "🙏 لغو",
    ],
)  # fmt: skip
def test_opt_out_in_every_form(text: str) -> None:
    """Every way a phone keyboard writes 11, لغو, «لغو ۱۱» or the Latin words is an opt-out."""
    assert classify(text) is Word.OPT_OUT


@pytest.mark.parametrize("text", ["12", "۱۲", "١٢", " ۱۲ ", "12."])
def test_opt_in(text: str) -> None:
    assert classify(text) is Word.OPT_IN


@pytest.mark.parametrize(
    "text",
    ["لطفا لغو کنید", "دیگه پیام ندید، لغو", "please STOP sending", "لغو۱۲", "لغوکنید", "11 لطفا"],
)
def test_a_sentence_that_mentions_opting_out_is_flagged_not_listed(text: str) -> None:
    """A reply that holds an opt-out word in a sentence is not listed automatically: a person
    reads it (it may be «how do I not cancel?»)."""
    assert classify(text) is Word.MENTIONS_OPT_OUT


@pytest.mark.parametrize(
    "text",
    ["سلام، قیمت چنده؟", "office hours?", "شماره من 09121134567", "111", "112", "", "؟", "۱۳"],
)
def test_other_replies(text: str) -> None:
    """Questions are other; "office", a phone number holding 11, 111 are not opt-out words."""
    assert classify(text) is Word.OTHER


def digits_in_any_form(text: str, forms: list[int]) -> str:
    """Each ASCII digit of `text` written as ASCII, Persian or Arabic-Indic, per `forms`."""
    out, index = [], 0
    for char in text:
        if char.isascii() and char.isdigit():
            form = forms[index % len(forms)]
            out.append((char, PERSIAN[char], ARABIC[char])[form])
            index += 1
        else:
            out.append(char)
    return "".join(out)


noise = st.lists(st.sampled_from([" ", ZWNJ, "\u200b", "\u00a0", "\t", "\u200f", "."]), max_size=3)


@given(
    base=st.sampled_from(["11", "لغو 11", "11 لغو", "لغو", "12", "stop", "off", "cancel"]),
    forms=st.lists(st.integers(0, 2), min_size=1, max_size=4),
    gaps=st.lists(noise, min_size=12, max_size=12),
    upper=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_digit_forms_zwnj_spacing_and_case_never_change_the_class(
    base: str, forms: list[int], gaps: list[list[str]], upper: list[bool]
) -> None:
    """۱۱ / لغو ۱۱ / 12 / stop in any mix of digit forms, with ZWNJ, spaces or marks between any
    two characters and any letter case, keep the class of their plain form."""
    expected = classify(base)
    assert expected in (Word.OPT_OUT, Word.OPT_IN)
    written = digits_in_any_form(base, forms)
    varied = "".join(
        "".join(gaps[i % 12]) + (char.upper() if upper[i % 12] else char)
        for i, char in enumerate(written)
    )
    assert classify(varied) is expected, repr(varied)


@given(st.text(max_size=40))
def test_any_text_has_a_class_and_never_raises(text: str) -> None:
    assert classify(text) in set(Word)
