"""CTC: loss against brute force, search rules, forced alignment, graph decoding, the network, training."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from asr.decode.ctc_search import collapse, forced_align, greedy_search, prefix_beam_search
from asr.decode.config import DecoderConfig
from asr.decode.decoder import Decoder
from asr.graph.compile import compile_graph
from asr.lang.arpa import LmAutomaton
from asr.lang.lexicon import Lexicon, SymbolTable
from asr.lang.prepare import Lang
from asr.nnet.ctc_model import CtcModel, ctc_hmm_side
from asr.nnet.optim import Optimizer
from asr.nnet.ctc_net import CtcNet, CtcNetConfig, stack_frames
from asr.nnet.ctc_train import CtcTrainConfig, Utterances, build_utterances, run_epoch, spec_augment
from asr.nnet.tokens import BLANK, WORD_SEP, TokenSet
from asr.features import FeatureConfig, FeaturePipeline
from asr.utils import AsrError


def _random_log_probs(T: int, V: int, seed: int, peak: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(T, V))
    if peak:
        logits[np.arange(T), rng.integers(0, V, T)] += peak
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def _brute_force_label_probs(lp: np.ndarray) -> dict[tuple[int, ...], float]:
    """p(labelling) = sum over every frame path that collapses to it."""
    T, V = lp.shape
    out: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(V), repeat=T):
        lab = tuple(collapse(path))
        out[lab] = out.get(lab, 0.0) + math.exp(sum(lp[t, k] for t, k in enumerate(path)))
    return out


def test_ctc_loss_equals_brute_force_sum_over_alignments():
    lp = _random_log_probs(5, 3, seed=0)
    probs = _brute_force_label_probs(lp)
    assert sum(probs.values()) == pytest.approx(1.0)
    loss_fn = torch.nn.CTCLoss(blank=0, reduction="none")
    for target in [(1,), (1, 2), (2, 2), (1, 2, 1)]:
        loss = loss_fn(torch.tensor(lp)[:, None], torch.tensor([target]), torch.tensor([5]), torch.tensor([len(target)]))
        assert float(loss[0]) == pytest.approx(-math.log(probs[target]), rel=1e-6)


def test_collapse_merges_repeats_then_drops_blanks():
    assert collapse([0, 1, 1, 0, 1, 2, 2, 0, 0, 2]) == [1, 1, 2, 2]
    assert collapse([0, 0, 0]) == []
    assert collapse([3]) == [3]
    lp = np.log(np.full((4, 3), 0.1))
    lp[[0, 1, 2, 3], [1, 1, 0, 1]] = np.log(0.8)
    assert greedy_search(lp) == [1, 1]


@pytest.mark.parametrize("seed", range(10))
def test_prefix_beam_search_with_beam_one_equals_greedy(seed):
    # Peaky outputs (each frame's best token above 1/2), as trained CTC models give.
    lp = _random_log_probs(30, 5, seed, peak=6.0)
    assert np.all(lp.max(axis=1) > np.log(0.5))
    assert prefix_beam_search(lp, beam=1) == greedy_search(lp)


@pytest.mark.parametrize("seed", range(3))
def test_prefix_beam_search_finds_the_most_probable_labelling(seed):
    lp = _random_log_probs(5, 3, seed + 10, peak=1.0)
    probs = _brute_force_label_probs(lp)
    best = max(probs, key=probs.get)
    assert tuple(prefix_beam_search(lp, beam=50, token_beam=100)) == best


def test_forced_align_recovers_the_emitting_frames():
    V = 4
    lp = np.full((10, V), np.log(0.02))
    path = [0, 1, 1, 0, 2, 0, 0, 2, 3, 0]  # tokens 1, 2, 2, 3
    lp[np.arange(10), path] = np.log(0.94)
    assert forced_align(lp, [1, 2, 2, 3]) == [(1, 1, 2), (2, 4, 4), (2, 7, 7), (3, 8, 8)]
    with pytest.raises(AsrError, match="utt7"):
        forced_align(lp[:3], [2, 2, 3], "utt7")  # 3 frames cannot hold 2 2 (needs a blank) 3


def test_tokens_encode_and_decode():
    lex = Lexicon({"YES": [["Y_B", "EH_I", "S_E"]], "NO": [["N_B", "OW_E"]], "<UNK>": [["SIL"]]})
    phones = TokenSet.for_phones(lex, ["SIL"])
    assert phones.symbols == [BLANK, "EH", "N", "OW", "S", "Y"]
    ids = phones.encode(["NO", "YES"], lex)
    assert phones.decode(ids) == ["N", "OW", "Y", "EH", "S"]
    with pytest.raises(AsrError, match="u1.*MAYBE"):
        phones.encode(["MAYBE"], lex, "u1")
    chars = TokenSet.for_chars([["NO", "YES"]])
    assert chars.symbols[:2] == [BLANK, WORD_SEP]
    assert chars.decode(chars.encode(["YES", "NO", "NO"])) == ["YES", "NO", "NO"]


def test_forget_gate_bias_is_one_after_init():
    for proj in (0, 8):
        net = CtcNet(CtcNetConfig(num_layers=2, hidden_dim=16, projection=proj), 5, 4)
        biases = net.forget_gate_bias()
        assert len(biases) == 4  # 2 layers x 2 directions
        for b in biases:
            assert torch.allclose(b, torch.ones(16))


def test_stack_frames_shapes_and_order():
    x = torch.arange(2 * 7 * 2, dtype=torch.float32).reshape(2, 7, 2)
    y, lengths = stack_frames(x, torch.tensor([7, 4]), 3)
    assert y.shape == (2, 3, 6) and lengths.tolist() == [3, 2]
    assert torch.equal(y[0, 1], x[0, 3:6].reshape(-1))
    assert torch.equal(y[0, 2, 2:], torch.zeros(4))  # zero-padded tail


def test_spec_augment_masks_but_keeps_shape():
    cfg = CtcTrainConfig(freq_masks=1, freq_mask_width=3, time_masks=1, time_mask_width=5)
    x = torch.ones(2, 50, 10)
    y = spec_augment(x, torch.tensor([50, 30]), cfg, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and torch.all(x == 1)
    assert (y == 0).any() and (y == 1).any()


def _synthetic_utts(n: int, tokens: int, dim: int, seed: int) -> tuple[dict, dict]:
    """Each token is a run of 6-10 frames around its own mean; runs are separated by 'silence'."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(tokens + 1, dim))
    feats, targets = {}, {}
    for i in range(n):
        seq = rng.integers(1, tokens + 1, size=rng.integers(2, 5)).tolist()
        frames = [means[0] + rng.normal(size=(5, dim))]
        for t in seq:
            frames.append(means[t] + rng.normal(scale=0.5, size=(rng.integers(6, 11), dim)))
            frames.append(means[0] + rng.normal(size=(3, dim)))
        feats[f"u{i}"] = np.concatenate(frames).astype(np.float32)
        targets[f"u{i}"] = seq
    return feats, targets


def test_tiny_model_overfits_synthetic_utterances():
    torch.manual_seed(0)
    feats, targets = _synthetic_utts(8, 3, 6, seed=0)
    cfg = CtcTrainConfig(net=CtcNetConfig(num_layers=1, hidden_dim=32, subsample=2, dropout=0.0),
                         learning_rate=0.02, batch_frames=400)
    data = build_utterances(feats, targets, sorted(feats), cfg.net.subsample)
    net = CtcNet(cfg.net, 6, 4)
    opt = Optimizer(net, cfg)
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        run_epoch(net, data, data.batches(cfg.batch_frames), cfg, opt, gen, "train")
    loss, ter = run_epoch(net, data, data.batches(cfg.batch_frames), cfg, None, gen, "eval")
    assert ter == 0.0 and loss < 0.2


def test_batches_respect_the_frame_budget_and_drop_too_short_utterances():
    feats = {f"u{i}": np.zeros((10 * i + 9, 2), np.float32) for i in range(6)}
    targets = {u: [1, 1, 2] for u in feats}  # needs 4 output frames (a blank between the 1s)
    data = build_utterances(feats, targets, list(reversed(sorted(feats))), subsample=3)
    assert isinstance(data, Utterances)
    assert data.keys == ["u1", "u2", "u3", "u4", "u5"]  # u0: 9 frames -> 3 outputs, too short; sorted
    batches = data.batches(100)
    assert sorted(i for b in batches for i in b) == list(range(5))
    for b in batches:
        assert len(b) * max(len(data.feats[i]) for i in b) <= 100 or len(b) == 1


def _tiny_ctc_system():
    """Words YES = Y EH S, NO = N OW; a phone-token CTC model's graph side."""
    phones = SymbolTable(["SIL", "Y", "EH", "S", "N", "OW"])
    lang = Lang(phones, SymbolTable(["NO", "YES", "ZED"]), Lexicon({"YES": [["Y", "EH", "S"]], "NO": [["N", "OW"]]}),
                None, ["SIL"])
    tokens = TokenSet.for_phones(lang.lexicon, lang.silence_phones)
    return lang, tokens, ctc_hmm_side(lang, tokens)


def test_graph_decoding_spells_words_from_tokens_and_never_leaves_the_lexicon():
    lang, tokens, hmm = _tiny_ctc_system()
    # ZED is in the LM but has no pronunciation: it must never come out.
    lm = LmAutomaton(1, 0, [(0, "YES", 0, 1.0), (0, "NO", 0, 1.0), (0, "ZED", 0, 0.5)], [], {0: 1.0})
    g = compile_graph(hmm["lexicon"], lang.words, hmm["phones"], lm, hmm["trans"], hmm["ctx"], "SIL")
    dec = Decoder(g, hmm["trans"].log_probs, DecoderConfig(acoustic_scale=1.0, transition_scale=0.0))
    # Peaky frames for NO YES: blank N blank OW blank Y EH EH S blank
    seq = ["N", "OW", "Y", "EH", "S"]
    frames = [0, tokens.index["N"], 0, tokens.index["OW"], 0, tokens.index["Y"], tokens.index["EH"],
              tokens.index["EH"], tokens.index["S"], 0]
    lp = np.full((len(frames), len(tokens)), np.log(0.01))
    lp[np.arange(len(frames)), frames] = np.log(0.95)
    res = dec.decode(lp)
    assert [lang.words.sym(w) for w in res.word_ids] == ["NO", "YES"]
    assert tokens.decode(greedy_search(lp)) == seq
    for seed in range(5):
        res = dec.decode(_random_log_probs(40, len(tokens), seed))
        assert all(lang.words.sym(w) in {"YES", "NO"} for w in res.word_ids)


def test_char_tokens_get_a_spelling_lang():
    lang, _, _ = _tiny_ctc_system()
    chars = TokenSet.for_chars([["YES", "NO"]])
    hmm = ctc_hmm_side(lang, chars)
    assert hmm["lexicon"].prons["YES"] == [["Y", "E", "S", WORD_SEP]]
    assert "ZED" not in hmm["lexicon"]  # Z and D are not tokens
    assert hmm["ctx"].pdf_of(0, hmm["phones"].id("E"), 0, 0) == chars.index["E"]
    assert hmm["ctx"].pdf_of(0, hmm["phones"].id("E"), 0, 1) == 0


def test_model_dir_round_trip_scores_identically(tmp_path):
    lang, tokens, hmm = _tiny_ctc_system()
    net = CtcNet(CtcNetConfig(num_layers=1, hidden_dim=8), 4, len(tokens)).eval()
    model = CtcModel(net=net, tokens=tokens, feature=FeatureConfig(kind="fbank", num_mel_bins=4),
                     pipeline=FeaturePipeline(), **hmm)
    model.save(tmp_path)
    back = CtcModel.load(tmp_path)
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    assert back.scores(x).shape == (7, len(tokens))
    np.testing.assert_allclose(back.scores(x), model.scores(x), rtol=1e-6)
    assert back.tokens.symbols == tokens.symbols and back.ctx.to_dict() == hmm["ctx"].to_dict()


def test_char_model_graph_decodes_spelled_words():
    lang, _, _ = _tiny_ctc_system()
    chars = TokenSet.for_chars([["YES", "NO"]])
    hmm = ctc_hmm_side(lang, chars)
    lm = LmAutomaton(1, 0, [(0, "YES", 0, 1.0), (0, "NO", 0, 1.0)], [], {0: 1.0})
    g = compile_graph(hmm["lexicon"], lang.words, hmm["phones"], lm, hmm["trans"], hmm["ctx"], hmm["silence_phone"])
    dec = Decoder(g, hmm["trans"].log_probs, DecoderConfig(acoustic_scale=1.0, transition_scale=0.0))
    spelled = [c for w in ["NO", "NO", "YES"] for c in list(w) + [WORD_SEP]]
    frames = [0] + [f for c in spelled for f in (chars.index[c], 0)]
    lp = np.full((len(frames), len(chars)), np.log(0.01))
    lp[np.arange(len(frames)), frames] = np.log(0.9)
    assert [lang.words.sym(w) for w in dec.decode(lp).word_ids] == ["NO", "NO", "YES"]
    assert chars.decode(greedy_search(lp)) == ["NO", "NO", "YES"]


def test_repeated_tokens_need_a_blank_in_the_graph():
    """NO NO = N OW N OW but YES YES = Y EH S Y EH S; with a word "O" = OW, frames N OW OW
    (no blank between the OWs) must not read as NO O: equal tokens need a blank between them."""
    phones = SymbolTable(["SIL", "N", "OW"])
    lang = Lang(phones, SymbolTable(["NO", "O"]), Lexicon({"NO": [["N", "OW"]], "O": [["OW"]]}), None, ["SIL"])
    tokens = TokenSet.for_phones(lang.lexicon, lang.silence_phones)
    hmm = ctc_hmm_side(lang, tokens)
    # O gets an LM bonus (cost -3) so that, were the rule missing, NO O would win on N OW OW.
    lm = LmAutomaton(1, 0, [(0, "NO", 0, 0.1), (0, "O", 0, -3.0)], [], {0: 0.1})
    g = compile_graph(hmm["lexicon"], lang.words, hmm["phones"], lm, hmm["trans"], hmm["ctx"], "SIL")
    dec = Decoder(g, hmm["trans"].log_probs, DecoderConfig(acoustic_scale=1.0, transition_scale=0.0))
    n, ow = tokens.index["N"], tokens.index["OW"]

    def words(frames):
        lp = np.full((len(frames), len(tokens)), np.log(0.01))
        lp[np.arange(len(frames)), frames] = np.log(0.98)
        return [lang.words.sym(w) for w in dec.decode(lp).word_ids]

    assert words([0, n, ow, ow, 0]) == ["NO"]
    assert words([0, n, ow, 0, ow, 0]) == ["NO", "O"]


def test_long_files_are_searched_in_chunks(tmp_path):
    """A recording over LONG_FILE_SECONDS goes through the chunked path: one result whose
    tokens are the chunks' own greedy outputs in order; n-best lists are refused for it."""
    import soundfile as sf

    from asr.audio import LONG_FILE_SECONDS, read_audio_chunks
    from asr.decode.ctc_run import _search, search_files
    from asr.features import compute_features, transform

    lang, tokens, hmm = _tiny_ctc_system()
    torch.manual_seed(0)
    net = CtcNet(CtcNetConfig(num_layers=1, hidden_dim=8), 4, len(tokens)).eval()
    model = CtcModel(net=net, tokens=tokens, feature=FeatureConfig(kind="fbank", num_mel_bins=4, sample_rate=8000),
                     pipeline=FeaturePipeline(delta_order=0), **hmm)
    model.save(tmp_path / "ctc")
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.normal(size=int(8000 * (LONG_FILE_SECONDS + 10)))).astype(np.float32)
    audio[8000 * 30: 8000 * 31] = 0.0  # a pause to cut at
    sf.write(tmp_path / "long.wav", audio, 8000)
    out = search_files(tmp_path / "ctc", [str(tmp_path / "long.wav")])
    expected = []
    for _, samples in read_audio_chunks(str(tmp_path / "long.wav"), 8000):
        f = transform(compute_features(samples, model.feature), model.pipeline)
        expected += list(_search(model, {"c": f}, "greedy", 8, 1, "x").values())[0][0][0]
    assert out[str(tmp_path / "long.wav")][0][0] == expected
    with pytest.raises(AsrError, match="n-best lists are not made for long files"):
        search_files(tmp_path / "ctc", [str(tmp_path / "long.wav")], search="prefix", nbest=2)
    # CTC forced alignment of such a file is refused in one line instead of growing without bound
    from asr.hmm.align_data import align_audio

    with pytest.raises(AsrError, match="too long for CTC forced alignment"):
        align_audio(tmp_path / "ctc", str(tmp_path / "long.wav"), ["YES", "NO"])


def test_batched_scores_equal_per_utterance_scores():
    """Padded, length-sorted batches (asr.acoustic.score_utterances) give each utterance the
    scores it gets alone, for the CTC network and the recurrent hybrid, and keep the order."""
    from types import SimpleNamespace

    from asr.acoustic import score_utterances
    from asr.nnet.model import DnnHmm
    from asr.nnet.network import NetConfig
    from asr.nnet.recurrent import RecurrentAcousticNet, padded_batches

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    feats = {f"u{k}": rng.normal(size=(n, 6)).astype(np.float32) for k, n in enumerate([7, 31, 2, 31, 12, 5])}
    ctc = SimpleNamespace(net=CtcNet(CtcNetConfig(num_layers=2, hidden_dim=8, subsample=3), 6, 5), device="cpu",
                          prior_scale=0.5, log_priors=np.log(np.full(5, 0.2)))
    ctc.scores = lambda f: CtcModel.scores(ctc, f)
    ctc.log_posteriors = lambda f: CtcModel.log_posteriors(ctc, f)
    ctc.scores_batch = lambda fs: CtcModel.scores_batch(ctc, fs)
    hybrid = SimpleNamespace(net=RecurrentAcousticNet(NetConfig(kind="rnn", num_layers=1, hidden_dim=8, context=1), 6, 4),
                             device="cpu", prior_scale=1.0, log_priors=np.log(np.full(4, 0.25)), mc_samples=0)
    hybrid.scores = lambda f: DnnHmm.scores(hybrid, f)
    hybrid.log_posteriors = lambda f: DnnHmm.log_posteriors(hybrid, f)
    hybrid._log_posteriors = lambda x: DnnHmm._log_posteriors(hybrid, x)
    hybrid.scores_batch = lambda fs: DnnHmm.scores_batch(hybrid, fs)
    for model in (ctc, hybrid):
        alone = {u: model.scores(f) for u, f in feats.items()}
        batched = score_utterances(model, feats)
        assert list(batched) == list(feats)
        for u in feats:
            assert batched[u].shape == alone[u].shape
            np.testing.assert_allclose(batched[u], alone[u], atol=1e-5)
    assert [len(u) for u, _, _ in padded_batches(feats, max_frames=62)] == [2, 4]  # N * T <= 62
    with pytest.raises(AsrError, match="u1: features of shape"):
        list(padded_batches({"u0": np.zeros((3, 6)), "u1": np.zeros((2, 5))}))


def test_phone_references_leave_out_utterances_with_an_unpronounced_word():
    """Greedy PER scoring: a reference word outside the model's lexicon (LibriSpeech dev's ANGOR
    is in neither the 200k list nor train) makes its utterance unscorable, not a crash."""
    from types import SimpleNamespace

    from asr.decode.ctc_run import phone_references

    lexicon = Lexicon({"YES": [["Y_B", "EH_I", "S_E"]], "NO": [["N_B", "OW_E"]]})
    model = SimpleNamespace(tokens=TokenSet.for_phones(lexicon, ["SIL"]), lexicon=lexicon)
    ref = {"u1": ["YES", "NO"], "u2": ["NO", "ANGOR"], "u3": []}
    phones, unscored = phone_references(model, ref)
    assert phones == {"u1": ["Y", "EH", "S", "N", "OW"], "u3": []} and unscored == ["u2"]
