"""CTC as an HMM, so the hybrid decoding graph and Viterbi decoder serve CTC models too.

EESEN's token FST / icefall's H in HLG, written in our topology terms. Every phone of the
lang gets two states:

    state 0: the phone's token (pdf = token id), self-loop = the token repeated;
    state 1: blank (pdf 0), self-loop; entered from state 0, optional;

and leaves the phone from either, so a phone reads ``token+ blank*``. Silence phones are
one blank state: the optional silence between words (and before the first one) is the
blank run CTC emits in pauses. All transition probabilities are 1 (log 0): CTC has no
transition model, only the token posteriors.

CTC needs a blank between two equal tokens (``A A`` is ``A blank A``; frames ``A A``
collapse to one ``A``). The graph compiler asks ``needs_separator`` and, where a phone
is followed by one with the same token, lets it leave only from its blank state. Across
words that depends on the next word's first phone, so the context says it is "wide"
(``context_width = 3``): the compiler then keeps word boundaries apart per (last phone,
next first phone), as for triphones, while every context maps to the same pdfs. On AN4
this took a CTC model from 9.44% to 8.15% WER: without it, SIX THIRTY decoded as SIXTH
THIRTY, the one TH spike read as two.
"""

from __future__ import annotations

from asr.hmm.topology import PhoneTopo, Topology
from asr.lang.lexicon import SymbolTable
from asr.tree.questions import base_phone
from asr.utils import AsrError

TOKEN_STATE: PhoneTopo = [[(0, 1.0), (1, 1.0), (2, 1.0)], [(1, 1.0), (2, 1.0)]]
BLANK_STATE: PhoneTopo = [[(0, 1.0), (1, 1.0)]]


def ctc_topology(phones: SymbolTable, silence_phones: list[str]) -> Topology:
    """Topology of every phone of ``phones`` (``<eps>`` and disambiguation symbols excluded)."""
    sil = set(silence_phones)
    topo = {}
    for i, sym in enumerate(phones.symbols):
        if i == 0 or sym.startswith("#"):
            continue
        topo[i] = BLANK_STATE if sym in sil else TOKEN_STATE
    return Topology(topo)


class CtcContext:
    """pdf of (phone, HMM state) = its token id (state 0) or the blank 0 (state 1, silence)."""

    kind = "ctc"
    context_width = 3  # word boundaries depend on the next word's first token (see the module docstring)

    def __init__(self, phone_token: dict[int, int], num_tokens: int):
        self.phone_token, self.num_tokens = phone_token, num_tokens

    @classmethod
    def build(cls, phones: SymbolTable, silence_phones: list[str], token_index: dict[str, int]) -> "CtcContext":
        """Map each position-dependent phone to its base phone's token (silence -> blank)."""
        sil = set(silence_phones)
        phone_token = {}
        for i, sym in enumerate(phones.symbols):
            if i == 0 or sym.startswith("#") or sym in sil:
                continue
            b = base_phone(sym)
            if b not in token_index:
                raise AsrError(f"phone {sym} ({b}) has no CTC token")
            phone_token[i] = token_index[b]
        return cls(phone_token, len(token_index))

    @property
    def num_pdfs(self) -> int:
        return self.num_tokens

    def pdf_of(self, left: int, phone: int, right: int, hmm_state: int) -> int:
        if hmm_state == 0 and phone in self.phone_token:
            return self.phone_token[phone]
        return 0

    def context_independent(self, phone: int) -> bool:
        return True

    def needs_separator(self, phone: int, next_phone: int) -> bool:
        """True when the two phones are the same token, so a blank must come between them."""
        return phone in self.phone_token and self.phone_token[phone] == self.phone_token.get(next_phone)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "phone_token": {str(k): v for k, v in self.phone_token.items()},
                "num_tokens": self.num_tokens}

    @classmethod
    def from_dict(cls, d: dict) -> "CtcContext":
        return cls({int(k): int(v) for k, v in d["phone_token"].items()}, int(d["num_tokens"]))
