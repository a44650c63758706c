"""The phonetic decision tree: maps any (left, phone, right, HMM state) to a tied state.

Each (phone, HMM state) starts at a root shared by all word-position variants of its
base phone; inner nodes ask "is the left / central / right phone in set Q?" and leaves
are pdfs (Kaldi's "senones"). Every context, seen in training or not, reaches a leaf.
The tree answers the same ``pdf_of`` question as :class:`~asr.hmm.context.MonophoneContext`,
so alignment graphs and the decoding graph use either without knowing which.
"""

from __future__ import annotations

import numpy as np

from asr.utils import AsrError

LEAF = -1


class DecisionTree:
    """A forest of binary trees (one root per base phone x HMM state) over shared questions.

    Attributes:
        roots: (phone id, hmm state) -> root node.
        key: (N,) context position asked at each node: 0 left, 1 central, 2 right; -1 leaf.
        question: (N,) index into ``questions`` (inner nodes).
        yes, no: (N,) children (inner nodes).
        pdf: (N,) pdf id of each leaf, -1 for inner nodes.
        questions: phone-id sets.
    """

    kind = "tree"
    context_width = 3

    def __init__(self, roots: dict[tuple[int, int], int], key: np.ndarray, question: np.ndarray, yes: np.ndarray,
                 no: np.ndarray, pdf: np.ndarray, questions: list[frozenset[int]]):
        self.roots = roots
        self.key, self.question = np.asarray(key, dtype=np.int64), np.asarray(question, dtype=np.int64)
        self.yes = np.asarray(yes, dtype=np.int64)
        self.no = np.asarray(no, dtype=np.int64)
        self.pdf = np.asarray(pdf, dtype=np.int64)
        self.questions = [frozenset(q) for q in questions]
        self._memo: dict[tuple[int, int, int, int], int] = {}

    @property
    def num_pdfs(self) -> int:
        return int(self.pdf.max()) + 1

    def pdf_of(self, left: int, phone: int, right: int, hmm_state: int) -> int:
        """The tied state of ``hmm_state`` of ``phone`` between ``left`` and ``right`` (0 = none)."""
        k = (left, phone, right, hmm_state)
        hit = self._memo.get(k)
        if hit is not None:
            return hit
        node = self.roots.get((phone, hmm_state))
        if node is None:
            raise AsrError(f"the tree has no root for phone {phone} state {hmm_state}")
        context = (left, phone, right)
        while self.key[node] != LEAF:
            node = self.yes[node] if context[self.key[node]] in self.questions[self.question[node]] else self.no[node]
        self._memo[k] = int(self.pdf[node])
        return self._memo[k]

    def context_independent(self, phone: int) -> bool:
        """True when no state of ``phone`` depends on its neighbours (its roots are leaves)."""
        return all(self.key[n] == LEAF for (p, _), n in self.roots.items() if p == phone)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "roots": [[p, s, n] for (p, s), n in sorted(self.roots.items())],
                "key": self.key.tolist(), "question": self.question.tolist(), "yes": self.yes.tolist(),
                "no": self.no.tolist(), "pdf": self.pdf.tolist(), "questions": [sorted(q) for q in self.questions]}

    @classmethod
    def from_dict(cls, d: dict) -> "DecisionTree":
        return cls({(p, s): n for p, s, n in d["roots"]}, d["key"], d["question"], d["yes"], d["no"], d["pdf"],
                   [frozenset(q) for q in d["questions"]])
