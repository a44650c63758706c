from __future__ import annotations

import json
import math

import pytest

from asr.hmm.topology import Topology
from asr.lang.arpa import lm_to_automaton, read_arpa, write_unigram_arpa
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.lang.prepare import prepare_lang
from asr.utils import AsrError

LN10 = math.log(10.0)

BIGRAM = """This is a hand-made bigram model, with prose before the data
section like AN4's an4.ug.lm. Lines like ngram 1=7 here are not data.

\\data\\
ngram 1=4
ngram 2=3

\\1-grams:
-0.5\t</s>
-99\t<s>\t-0.3
-0.4\tA\t-0.2
-0.6\tB

\\2-grams:
-0.1\t<s> A
-0.2\tA B
-0.3\tA </s>

\\end\\
"""


@pytest.fixture
def bigram(tmp_path):
    p = tmp_path / "lm.arpa"
    p.write_text(BIGRAM)
    return read_arpa(p)


def test_read_arpa(bigram):
    lm = bigram
    assert lm.order == 2
    assert lm.probs[()]["A"] == pytest.approx(-0.4 * LN10)
    assert lm.probs[()]["</s>"] == pytest.approx(-0.5 * LN10)
    assert lm.probs[("<s>",)]["A"] == pytest.approx(-0.1 * LN10)
    assert lm.probs[("A",)] == pytest.approx({"B": -0.2 * LN10, "</s>": -0.3 * LN10})
    assert lm.backoffs == pytest.approx({("<s>",): -0.3 * LN10, ("A",): -0.2 * LN10})
    assert lm.vocabulary() == {"<s>", "</s>", "A", "B"}


def test_read_arpa_errors(tmp_path):
    with pytest.raises(AsrError):
        read_arpa(tmp_path / "missing.arpa")
    p = tmp_path / "bad.arpa"
    p.write_text("just prose\n")
    with pytest.raises(AsrError, match="data"):
        read_arpa(p)
    p.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\nnot-a-number A\n\\end\\\n")
    with pytest.raises(AsrError, match="malformed"):
        read_arpa(p)
    p.write_text("\\data\\\nngram 1=0\n\\end\\\n")
    with pytest.raises(AsrError):
        read_arpa(p)


def test_lm_to_automaton(bigram):
    a = lm_to_automaton(bigram)
    # States: (), (<s>,), (A,); B has no continuation and no backoff, so it is no state.
    assert a.num_states == 3
    empty, bos, hist_a = 0, 1, 2
    assert a.start == bos
    arcs = {(src, w): (dst, cost) for src, w, dst, cost in a.word_arcs}
    assert len(arcs) == len(a.word_arcs) == 4
    assert arcs[(empty, "A")] == (hist_a, pytest.approx(0.4 * LN10))
    assert arcs[(empty, "B")] == (empty, pytest.approx(0.6 * LN10))
    assert arcs[(bos, "A")] == (hist_a, pytest.approx(0.1 * LN10))
    assert arcs[(hist_a, "B")] == (empty, pytest.approx(0.2 * LN10))
    assert not any(w in ("<s>", "</s>") for _, w, _, _ in a.word_arcs)
    assert sorted(a.backoff_arcs) == [(bos, empty, pytest.approx(0.3 * LN10)),
                                      (hist_a, empty, pytest.approx(0.2 * LN10))]
    assert a.final_costs == pytest.approx({empty: 0.5 * LN10, hist_a: 0.3 * LN10})

    restricted = lm_to_automaton(bigram, vocabulary={"A"})
    assert {w for _, w, _, _ in restricted.word_arcs} == {"A"}


def _sentence_cost(a, words):
    """Cheapest cost of a sentence through the automaton (word arcs + any backoffs + </s>)."""
    from functools import lru_cache

    backoff = {}
    for s, d, c in a.backoff_arcs:
        backoff.setdefault(s, []).append((d, c))
    word = {}
    for s, w, d, c in a.word_arcs:
        word[(s, w)] = (d, c)

    @lru_cache(None)
    def best(state, i):
        out = math.inf
        if i == len(words):
            if state in a.final_costs:
                out = a.final_costs[state]
        elif (state, words[i]) in word:
            d, c = word[(state, words[i])]
            out = c + best(d, i + 1)
        for d, c in backoff.get(state, []):
            out = min(out, c + best(d, i))
        return out

    return best(a.start, 0)


def test_automaton_scores_sentences_like_the_lm(bigram):
    a = lm_to_automaton(bigram)
    # <s> A B </s>: P(A|<s>) P(B|A) bo(B)?  B has no bigram -> backoff from (B,) which has none -> P(</s>).
    expect = (0.1 + 0.2 + 0.5) * LN10
    assert _sentence_cost(a, ("A", "B")) == pytest.approx(expect)
    # <s> B </s>: backoff(<s>) P(B) P(</s>).
    assert _sentence_cost(a, ("B",)) == pytest.approx((0.3 + 0.6 + 0.5) * LN10)
    # <s> A </s>: P(A|<s>) P(</s>|A).
    assert _sentence_cost(a, ("A",)) == pytest.approx((0.1 + 0.3) * LN10)


def test_backoff_only_histories_get_no_state(tmp_path):
    """A bigram file with back-off weights but (almost) no bigrams, like AN4's LM: the
    histories without n-grams of their own fold into the unigram state, scores unchanged."""
    p = tmp_path / "lm.arpa"
    p.write_text("\\data\\\nngram 1=4\nngram 2=1\n\n\\1-grams:\n-0.5\t</s>\n-99\t<s>\t0\n"
                 "-0.4\tA\t-0.2\n-0.6\tB\t0\n\n\\2-grams:\n-0.1\t<s> </s>\n\n\\end\\\n")
    lm = read_arpa(p)
    a = lm_to_automaton(lm)
    assert a.num_states == 2  # () and (<s>,) only: (A,) and (B,) have no bigrams
    # <s> A B </s> = P(A) bo(A) P(B) P(</s>): A's back-off weight rides on the arc into ().
    assert _sentence_cost(a, ("A", "B")) == pytest.approx((0.4 + 0.2 + 0.6 + 0.5) * LN10)
    assert _sentence_cost(a, ("B", "A")) == pytest.approx((0.6 + 0.4 + 0.2 + 0.5) * LN10)


def test_unigram_word_loop(tmp_path):
    p = tmp_path / "G.arpa"
    write_unigram_arpa(p, ["B", "A", "A", "<s>", "C"])
    lm = read_arpa(p)
    assert lm.order == 1
    assert lm.probs[()] == pytest.approx({"</s>": math.log(0.25), "<s>": -99 * LN10, "A": math.log(0.25),
                                          "B": math.log(0.25), "C": math.log(0.25)}, rel=1e-5)
    a = lm_to_automaton(lm)
    assert a.num_states == 1 and a.start == 0
    assert sorted(w for _, w, _, _ in a.word_arcs) == ["A", "B", "C"]
    assert all(s == d == 0 for s, _, d, _ in a.word_arcs)
    assert a.backoff_arcs == []
    assert a.final_costs == pytest.approx({0: math.log(4)}, rel=1e-5)


def test_lexicon_read_write(tmp_path):
    p = tmp_path / "lexicon.txt"
    p.write_text("HELLO HH AH L OW\nHELLO HH EH L OW\n\nWORLD W ER L D\nHELLO HH AH L OW\n")
    lex = Lexicon.read(p)
    assert lex.prons["HELLO"] == [["HH", "AH", "L", "OW"], ["HH", "EH", "L", "OW"]]
    assert lex.prons["WORLD"] == [["W", "ER", "L", "D"]]
    assert lex.words() == ["HELLO", "WORLD"]
    assert lex.phones() == sorted({"HH", "AH", "EH", "L", "OW", "W", "ER", "D"})
    assert "HELLO" in lex and "BYE" not in lex
    out = tmp_path / "out.txt"
    lex.write(out)
    assert Lexicon.read(out).prons == lex.prons
    p.write_text("HELLO\n")
    with pytest.raises(AsrError, match="no pronunciation"):
        Lexicon.read(p)
    p.write_text("\n\n")
    with pytest.raises(AsrError):
        Lexicon.read(p)
    with pytest.raises(AsrError):
        Lexicon.read(tmp_path / "missing.txt")


def test_symbol_table_round_trip(tmp_path):
    st = SymbolTable(["b", "a", "<eps>", "c"])
    assert st.sym(0) == "<eps>" and st.id("<eps>") == 0
    assert st.symbols == ["<eps>", "b", "a", "c"]
    assert st.id("a") == 2 and st.sym(3) == "c" and len(st) == 4
    assert "b" in st and "z" not in st
    with pytest.raises(AsrError):
        st.id("z")
    p = tmp_path / "words.txt"
    st.write(p)
    assert p.read_text() == "<eps> 0\nb 1\na 2\nc 3\n"
    back = SymbolTable.read(p)
    assert back.symbols == st.symbols
    with pytest.raises(AsrError):
        SymbolTable(["a", "a"])
    p.write_text("<eps> 0\na 2\n")
    with pytest.raises(AsrError):
        SymbolTable.read(p)
    p.write_text("<eps> 0\na\n")
    with pytest.raises(AsrError):
        SymbolTable.read(p)


def _dict_dir(tmp_path, lexicon_text):
    d = tmp_path / "dict"
    d.mkdir()
    (d / "lexicon.txt").write_text(lexicon_text)
    (d / "silence_phones.txt").write_text("SIL\n")
    (d / "nonsilence_phones.txt").write_text("Y\nN\nEH\nS\nOW\n")
    return d


def test_prepare_lang(tmp_path):
    d = _dict_dir(tmp_path, "YES Y EH S\nNO N OW\n<SIL> SIL\n")
    out = tmp_path / "lang"
    prepare_lang(d, out, nonsil_states=3, sil_states=5)
    for name in ("phones.txt", "words.txt", "lexicon.txt", "topo.json", "silence_phones.txt", "G.arpa"):
        assert (out / name).exists(), name
    phones = SymbolTable.read(out / "phones.txt")
    assert phones.symbols == ["<eps>", "SIL", "EH", "N", "OW", "S", "Y"]
    words = SymbolTable.read(out / "words.txt")
    assert words.symbols == ["<eps>", "<SIL>", "NO", "YES"]
    topo = Topology.from_dict(json.loads((out / "topo.json").read_text()))
    assert sorted(topo.phone_topo) == list(range(1, 7))
    assert topo.num_states(phones.id("SIL")) == 5
    assert all(topo.num_states(phones.id(p)) == 3 for p in ("Y", "N", "EH", "S", "OW"))
    lm = read_arpa(out / "G.arpa")
    # The word loop leaves out <SIL>-like words and has </s>.
    assert set(lm.probs[()]) == {"<s>", "</s>", "NO", "YES"}
    assert lm.probs[()]["YES"] == pytest.approx(math.log(1 / 3), rel=1e-5)
    assert Lexicon.read(out / "lexicon.txt").prons == Lexicon.read(d / "lexicon.txt").prons

    # A given LM is copied verbatim.
    lm_path = tmp_path / "my.arpa"
    lm_path.write_text(BIGRAM)
    out2 = tmp_path / "lang2"
    prepare_lang(d, out2, lm=lm_path)
    assert (out2 / "G.arpa").read_text() == BIGRAM


def test_prepare_lang_rejects_undeclared_phone(tmp_path):
    d = _dict_dir(tmp_path, "YES Y EH S\nMAYBE M EY B IY\n")
    with pytest.raises(AsrError, match="EY"):
        prepare_lang(d, tmp_path / "lang")
    assert not (tmp_path / "lang" / "phones.txt").exists()
