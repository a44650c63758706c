"""Numbers written with digits, as words the way LibriSpeech's readers say them.

LibriSpeech's transcripts read "150" as ONE HUNDRED AND FIFTY (British "and") and the
year "1861" as EIGHTEEN SIXTY ONE; ordinals "21st" become TWENTY FIRST. A four-digit
number from 1100 to 1999 without a thousands comma is read as a year; "1,500" and "1500"
outside that range are cardinals.
"""

from __future__ import annotations

import re

ONES = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "TEN", "ELEVEN", "TWELVE",
        "THIRTEEN", "FOURTEEN", "FIFTEEN", "SIXTEEN", "SEVENTEEN", "EIGHTEEN", "NINETEEN"]
TENS = ["", "", "TWENTY", "THIRTY", "FORTY", "FIFTY", "SIXTY", "SEVENTY", "EIGHTY", "NINETY"]
SCALES = [(10 ** 12, "TRILLION"), (10 ** 9, "BILLION"), (10 ** 6, "MILLION"), (1000, "THOUSAND")]
ORDINAL = {"ONE": "FIRST", "TWO": "SECOND", "THREE": "THIRD", "FIVE": "FIFTH", "EIGHT": "EIGHTH", "NINE": "NINTH",
           "TWELVE": "TWELFTH"}

# A whole number: not part of a fraction (3/4), a decimal (2.5) or a word (A4).
NUMBER = re.compile(r"(?<![\w/.,])(\d{1,3}(?:,\d{3})+|\d+)(st|nd|rd|th|ST|ND|RD|TH)?(?![\w/]|[.,]\d)")


def _below_100(n: int) -> list[str]:
    if n < 20:
        return [ONES[n]]
    return [TENS[n // 10]] + ([ONES[n % 10]] if n % 10 else [])


def _below_1000(n: int) -> list[str]:
    if n < 100:
        return _below_100(n)
    out = [ONES[n // 100], "HUNDRED"]
    if n % 100:
        out += ["AND"] + _below_100(n % 100)
    return out


def cardinal(n: int) -> list[str]:
    """``n`` >= 0 in words: 150 -> ONE HUNDRED AND FIFTY, 2005 -> TWO THOUSAND AND FIVE."""
    if n < 0:
        raise ValueError(f"negative number {n}")
    if n < 1000:
        return _below_1000(n)
    out: list[str] = []
    rest = n
    for value, name in SCALES:
        if rest >= value:
            out += cardinal(rest // value) + [name]
            rest %= value
    if rest:
        out += (["AND"] if rest < 100 else []) + _below_1000(rest)
    return out


def year(n: int) -> list[str]:
    """A year read in pairs: 1861 -> EIGHTEEN SIXTY ONE, 1800 -> EIGHTEEN HUNDRED, 1905 -> NINETEEN OH FIVE."""
    hi, lo = divmod(n, 100)
    if lo == 0:
        return _below_100(hi) + ["HUNDRED"]
    if lo < 10:
        return _below_100(hi) + ["OH", ONES[lo]]
    return _below_100(hi) + _below_100(lo)


def ordinal(n: int) -> list[str]:
    """21 -> TWENTY FIRST, 100 -> ONE HUNDREDTH, 12 -> TWELFTH."""
    words = cardinal(n)
    last = words[-1]
    if last in ORDINAL:
        words[-1] = ORDINAL[last]
    elif last.endswith("Y"):
        words[-1] = last[:-1] + "IETH"
    else:
        words[-1] = last + "TH"
    return words


def number_words(token: str, suffix: str | None = None) -> list[str]:
    """Words for a digit string (commas allowed) with an optional ordinal suffix."""
    plain = "," not in token
    n = int(token.replace(",", ""))
    if suffix:
        return ordinal(n)
    if plain and len(token) == 4 and 1100 <= n <= 1999:
        return year(n)
    return cardinal(n)


def expand_numbers(text: str) -> str:
    """Every number in ``text`` (digits, thousands commas, ordinal suffixes) as words."""
    return NUMBER.sub(lambda m: " " + " ".join(number_words(m.group(1), m.group(2))) + " ", text)
