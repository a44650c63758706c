"""LM text normalisation: numbers as words, Gutenberg headers, apostrophes, sentences."""

from __future__ import annotations

import io
import tarfile

import pytest

from asr.lang.book_text import archive_sentences, book_sentences, strip_gutenberg
from asr.lang.numbers import cardinal, expand_numbers, number_words, ordinal, year
from asr.utils import AsrError


@pytest.mark.parametrize("n, words", [
    (0, "ZERO"), (7, "SEVEN"), (13, "THIRTEEN"), (20, "TWENTY"), (42, "FORTY TWO"), (100, "ONE HUNDRED"),
    (150, "ONE HUNDRED AND FIFTY"), (101, "ONE HUNDRED AND ONE"), (1000, "ONE THOUSAND"),
    (2005, "TWO THOUSAND AND FIVE"), (1500, "ONE THOUSAND FIVE HUNDRED"),
    (1_250_000, "ONE MILLION TWO HUNDRED AND FIFTY THOUSAND"), (3_000_000_017, "THREE BILLION AND SEVENTEEN")])
def test_cardinals(n, words):
    assert " ".join(cardinal(n)) == words


def test_years_ordinals_and_tokens():
    assert " ".join(year(1861)) == "EIGHTEEN SIXTY ONE"
    assert " ".join(year(1800)) == "EIGHTEEN HUNDRED" and " ".join(year(1905)) == "NINETEEN OH FIVE"
    assert [" ".join(ordinal(n)) for n in (1, 2, 3, 5, 12, 20, 21, 100)] == [
        "FIRST", "SECOND", "THIRD", "FIFTH", "TWELFTH", "TWENTIETH", "TWENTY FIRST", "ONE HUNDREDTH"]
    assert " ".join(number_words("1861")) == "EIGHTEEN SIXTY ONE"  # a year
    assert " ".join(number_words("1,861")) == "ONE THOUSAND EIGHT HUNDRED AND SIXTY ONE"  # a count
    assert " ".join(number_words("2500")) == "TWO THOUSAND FIVE HUNDRED"  # out of the year range
    assert " ".join(expand_numbers("on the 4th of July 1776, 300 men").split()) == \
        "on the FOURTH of July SEVENTEEN SEVENTY SIX , THREE HUNDRED men"


BOOK = """The Project Gutenberg eBook of Things

Title: Things

*** START OF THE PROJECT GUTENBERG EBOOK THINGS ***

CHAPTER I.

"Don't go," said the man--who was 'tired'.  He had 150 sheep
and lived in 1861; the 2nd
farm had 3/4 of an acre.  Ok.

Well-known folk! Yes?

*** END OF THE PROJECT GUTENBERG EBOOK THINGS ***

Licence text with numbers 1 2 3 that must not appear.
"""


def test_book_sentences_normalise_like_librispeech():
    assert "Licence" not in strip_gutenberg(BOOK) and "Title" not in strip_gutenberg(BOOK)
    assert list(book_sentences(BOOK)) == [
        "CHAPTER I",
        "DON'T GO SAID THE MAN WHO WAS TIRED",
        "HE HAD ONE HUNDRED AND FIFTY SHEEP AND LIVED IN EIGHTEEN SIXTY ONE",
        # "the 2nd farm had 3/4 of an acre": digits left over (3/4), dropped; "Ok": one word, dropped
        "WELL KNOWN FOLK",
    ]


def test_archive_sentences_read_books_from_a_tar(tmp_path):
    data = BOOK.encode()
    with tarfile.open(tmp_path / "books.tar.gz", "w:gz") as tar:
        for name in ("books/A/one.txt", "books/B/two.txt", "MANIFEST.tsv"):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert len(list(archive_sentences(tmp_path / "books.tar.gz"))) == 2 * 4  # the .tsv is not a book
    with pytest.raises(AsrError, match="not found"):
        list(archive_sentences(tmp_path / "none.tar.gz"))
    (tmp_path / "bad.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(AsrError, match="not a readable tar"):
        list(archive_sentences(tmp_path / "bad.tar.gz"))
