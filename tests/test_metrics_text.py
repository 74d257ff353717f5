"""Text metrics equal their reference implementations (pycocoevalcap, rouge-score) on the same text."""

from __future__ import annotations

import random

import numpy as np
import pytest

from medmo.eval.metrics._ngrams import NgramTable, ptb_lite
from medmo.eval.metrics.cider import cider, cider_scores
from medmo.eval.metrics.text import bleu, lcs_length, rouge_l, rouge_score_tokenize

REPORTS = [
    "The heart size is normal. No focal consolidation, pleural effusion or pneumothorax.",
    "Mild cardiomegaly. Small bilateral pleural effusions with bibasilar atelectasis.",
    "Endotracheal tube terminates 4 cm above the carina. Right IJ line in the SVC.",
    "Lungs are clear. No acute cardiopulmonary process.",
    "There is a 1.2 cm nodule in the right upper lobe, which wasn't seen previously.",
    "Interval increase in the left pleural effusion; patient's heart is enlarged.",
    "No pneumothorax. Stable postoperative changes after sternotomy (wires intact).",
    "Diffuse interstitial opacities, likely pulmonary edema - clinical correlation advised!",
]
WORDS = (
    "the no a of heart lungs normal clear pleural effusion pneumothorax opacity left right lower lobe "
    "mild moderate small stable size is are there cardiomegaly edema atelectasis consolidation"
).split()


def _random_corpus(seed: int, n: int, max_refs: int = 3):
    rng = random.Random(seed)

    def sent():
        if rng.random() < 0.5:
            base = rng.choice(REPORTS).lower().replace(".", " .").replace(",", " ,").split()
            return " ".join(w for w in base if rng.random() > 0.2)
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 14)))

    hyps = [sent() for _ in range(n)]
    refs = [[sent() for _ in range(rng.randint(1, max_refs))] for _ in range(n)]
    return hyps, refs


@pytest.fixture(scope="module")
def coco():
    pytest.importorskip("pycocoevalcap")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    return Bleu, Cider, Rouge


def _as_coco(hyps, refs):
    return {i: r for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)}


# ------------------------------------------------------------------------------------- tokenizer


@pytest.mark.parametrize(
    "text,tokens",
    [
        ("The heart is NORMAL.", ["the", "heart", "is", "normal"]),
        ("No effusion, pneumothorax; or edema!", ["no", "effusion", "pneumothorax", "or", "edema"]),
        ("A 1.2 cm nodule (stable).", ["a", "1.2", "cm", "nodule", "-lrb-", "stable", "-rrb-"]),
        ("Dr. Lee, e.g. i.e. vs. now.", ["dr.", "lee", "e.g.", "i.e.", "vs.", "now"]),
        ("Chest x-ray and/or CT", ["chest", "x-ray", "and/or", "ct"]),
        ("It isn't the patient's", ["it", "is", "n't", "the", "patient", "'s"]),
        ("50% increase -- see above...", ["50", "%", "increase", "see", "above"]),
        ("", []),
    ],
)
def test_ptb_lite(text, tokens):
    assert ptb_lite(text) == tokens


@pytest.mark.slow
def test_ptb_lite_matches_java_ptb_tokenizer(coco):
    """Against the real Stanford PTBTokenizer + coco-caption filter (needs Java; skipped without it)."""
    import shutil

    if shutil.which("java") is None:
        pytest.skip("java not installed: the Stanford PTB tokenizer cannot run")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    texts = REPORTS + [
        "Chest x-ray and/or CT: 50% increase (see above)...",
        "It isn't the patient's \"normal\" study; Dr. Smith's note.",
        "Lines/tubes: ETT 5 cm above carina; NG tube in stomach. COVID-19 pneumonia?",
        "Size 12x10 mm, e.g. stable [unchanged] {sic}",
    ]
    out = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(texts)})
    for i, t in enumerate(texts):
        assert ptb_lite(t) == out[i][0].split(), t


def test_ngram_table_counts():
    t = NgramTable.build([["a", "b", "a"], [], ["a", "b"]], n=2)
    rows = {(int(s), int(g)): c for s, g, c in zip(t.sent, t.gram, t.count)}
    assert sum(c for (s, _), c in rows.items() if s == 0) == 3 + 2  # 3 unigrams + 2 bigrams
    assert not any(s == 1 for s, _ in rows)
    assert t.n_grams == 4  # a, b, "a b", "b a"
    assert t.lengths.tolist() == [3, 0, 2]


# ------------------------------------------------------------------------------------------ CIDEr


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cider_d_equals_pycocoevalcap(coco, seed):
    hyps, refs = _random_corpus(seed, 120)
    gts, res = _as_coco(hyps, refs)
    ref_score, ref_scores = coco[1]().compute_score(gts, res)
    ours = cider(hyps, refs, tokenize=False)
    assert ours["aggregate"]["cider_d"] == pytest.approx(ref_score, abs=1e-9)
    got = np.array([r["cider_d"] for r in ours["per_sample"]])
    np.testing.assert_allclose(got, ref_scores, atol=1e-9, rtol=0)
    assert ref_score > 0.05  # the fixture has real overlap, so the comparison means something


def test_cider_on_realistic_reports_equals_pycocoevalcap(coco):
    hyps = [" ".join(ptb_lite(r)) for r in REPORTS]
    refs = [[" ".join(ptb_lite(REPORTS[(i + k) % len(REPORTS)])) for k in (0, 1)] for i in range(len(REPORTS))]
    gts, res = _as_coco(hyps, refs)
    ref_score, _ = coco[1]().compute_score(gts, res)
    assert cider(REPORTS, [[REPORTS[(i + k) % 8] for k in (0, 1)] for i in range(8)])["aggregate"]["cider_d"] == (
        pytest.approx(ref_score, abs=1e-9)
    )


def _naive_plain_cider(hyps, refs, n=4):
    """Original CIDEr from its definition (Vedantam et al. 2015, x10 as vrama91/cider), with dicts."""
    from collections import Counter

    def grams(toks):
        return Counter(tuple(toks[i : i + k]) for k in range(1, n + 1) for i in range(len(toks) - k + 1))

    N = len(hyps)
    df = Counter(g for rs in refs for g in set().union(*(grams(r) for r in rs)))

    def vec(toks):
        c = grams(toks)
        return {g: v * (np.log(N) - np.log(max(1.0, df[g]))) for g, v in c.items()}

    out = []
    for h, rs in zip(hyps, refs):
        vh, total = vec(h), 0.0
        for r in rs:
            vr, per = vec(r), []
            for k in range(1, n + 1):
                a = {g: v for g, v in vh.items() if len(g) == k}
                b = {g: v for g, v in vr.items() if len(g) == k}
                dot = sum(v * b.get(g, 0.0) for g, v in a.items())
                na, nb = np.sqrt(sum(v * v for v in a.values())), np.sqrt(sum(v * v for v in b.values()))
                per.append(dot / (na * nb) if na and nb else dot)
            total += np.mean(per)
        out.append(total / len(rs) * 10)
    return np.array(out)


def test_plain_cider_matches_its_definition():
    hyps, refs = _random_corpus(5, 60)
    ours = cider_scores([h.split() for h in hyps], [[r.split() for r in rs] for rs in refs], variant="plain")
    want = _naive_plain_cider([h.split() for h in hyps], [[r.split() for r in rs] for rs in refs])
    np.testing.assert_allclose(ours, want, atol=1e-9)
    d = cider_scores([h.split() for h in hyps], [[r.split() for r in rs] for rs in refs], variant="d")
    assert not np.allclose(ours, d)  # clipping and the length penalty make a difference


def test_cider_is_corpus_level_not_per_shard():
    hyps, refs = _random_corpus(7, 40)
    whole = cider(hyps, refs, tokenize=False)["aggregate"]["cider_d"]
    shards = [
        cider(hyps[i : i + 10], refs[i : i + 10], tokenize=False)["aggregate"]["cider_d"] for i in range(0, 40, 10)
    ]
    assert abs(np.mean(shards) - whole) > 1e-6  # document frequencies depend on the whole set


def test_empty_texts_equal_pycocoevalcap(coco):
    hyps, refs = ["", "", "a b"], [["a b c"], ["", "c d"], ["a b"]]
    gts, res = _as_coco(hyps, refs)
    _, want = coco[1]().compute_score(gts, res)
    np.testing.assert_allclose([r["cider_d"] for r in cider(hyps, refs, tokenize=False)["per_sample"]], want)
    assert cider(["", ""], ["a b", "c d"])["aggregate"]["cider_d"] == 0.0
    (b, _), ours = coco[0](4).compute_score(gts, res, verbose=0), bleu(hyps, refs, tokenize=False)
    assert [ours["aggregate"][f"bleu{k}"] for k in range(1, 5)] == pytest.approx(b, abs=1e-12)


def test_cider_input_errors():
    with pytest.raises(ValueError, match="no reference"):
        cider(["a"], [[]])
    with pytest.raises(ValueError, match="variant"):
        cider(["a"], ["a"], variant="x")
    assert cider([], [])["aggregate"]["cider_d"] == 0.0


# ------------------------------------------------------------------------------------------- BLEU


@pytest.mark.parametrize("seed", [0, 3])
def test_bleu_equals_pycocoevalcap(coco, seed):
    hyps, refs = _random_corpus(seed, 120, max_refs=4)
    gts, res = _as_coco(hyps, refs)
    ref_score, ref_scores = coco[0](4).compute_score(gts, res, verbose=0)
    ours = bleu(hyps, refs, tokenize=False)
    for k in range(4):
        assert ours["aggregate"][f"bleu{k + 1}"] == pytest.approx(ref_score[k], abs=1e-9)
        got = [r[f"bleu{k + 1}"] for r in ours["per_sample"]]
        np.testing.assert_allclose(got, ref_scores[k], atol=1e-9, rtol=0)
    assert ref_score[1] > 0.1


def test_bleu_closest_reference_length_tie_takes_shorter(coco):
    hyps, refs = ["a b c d"], [["a b c", "a b c d e"]]  # both refs 1 token away: pycocoevalcap picks 3
    gts, res = _as_coco(hyps, refs)
    ref_score, _ = coco[0](4).compute_score(gts, res, verbose=0)
    assert bleu(hyps, refs, tokenize=False)["aggregate"]["bleu1"] == pytest.approx(ref_score[0], abs=1e-12)


# ---------------------------------------------------------------------------------------- ROUGE-L


def _naive_lcs(a, b):
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            t[i][j] = t[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(t[i - 1][j], t[i][j - 1])
    return t[-1][-1]


def test_bit_parallel_lcs_matches_dynamic_programming():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 90))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 90))]
        assert lcs_length(a, b) == _naive_lcs(a, b)


@pytest.mark.parametrize("seed", [0, 4])
def test_rouge_l_coco_equals_pycocoevalcap(coco, seed):
    hyps, refs = _random_corpus(seed, 100)
    gts, res = _as_coco(hyps, refs)
    ref_score, ref_scores = coco[2]().compute_score(gts, res)
    ours = rouge_l(hyps, refs, variant="coco", tokenize=False)
    assert ours["aggregate"]["rougeL_coco"] == pytest.approx(ref_score, abs=1e-9)
    np.testing.assert_allclose([r["rougeL_coco"] for r in ours["per_sample"]], ref_scores, atol=1e-9)


def test_rouge_l_equals_rouge_score_package():
    rs = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rs.RougeScorer(["rougeL"])
    hyps, refs = _random_corpus(9, 80)
    hyps = hyps[:70] + REPORTS + ["Café naïve — 3.5cm", ""]
    refs = refs[:70] + [[r.upper()] for r in reversed(REPORTS)] + [["cafe naive 3 5cm"], ["x"]]
    ours = rouge_l(hyps, refs)
    want = [scorer.score_multi(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs)]
    np.testing.assert_allclose([r["rougeL"] for r in ours["per_sample"]], want, atol=1e-12)
    assert ours["aggregate"]["rougeL"] == pytest.approx(float(np.mean(want)), abs=1e-12)
    assert rouge_score_tokenize("Café 3.5cm") == ["caf", "3", "5cm"]
