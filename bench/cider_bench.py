"""Time MedMO's vectorized CIDEr-D against pycocoevalcap's Cider on synthetic radiology reports.

Run: ``.venv/bin/python bench/cider_bench.py [--n 10000] [--seed 0]`` (needs ``pip install pycocoevalcap``).
Prints both times (best of ``--repeat``), the speedup and the largest per-sample score
difference. Both scorers get the same
pre-tokenized text, so only the scoring is timed.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

SENTENCES = [
    "the heart size is normal",
    "mild cardiomegaly is present",
    "no focal consolidation pleural effusion or pneumothorax",
    "small bilateral pleural effusions with bibasilar atelectasis",
    "the lungs are clear",
    "there is a right lower lobe opacity concerning for pneumonia",
    "endotracheal tube terminates 4 cm above the carina",
    "no acute cardiopulmonary process",
    "interval increase in the left pleural effusion",
    "stable 1 cm nodule in the right upper lobe",
    "diffuse interstitial opacities likely pulmonary edema",
    "degenerative changes of the thoracic spine",
    "no displaced rib fracture is seen",
    "the mediastinal contours are within normal limits",
]


def synth_report(rng: random.Random) -> str:
    """A 3-6 sentence report with word dropout, so pairs overlap partially as real ones do."""
    words = []
    for s in rng.sample(SENTENCES, rng.randint(3, 6)):
        words += [w for w in s.split() if rng.random() > 0.1] + ["."]
    return " ".join(words)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="number of (prediction, reference) pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs for each scorer")
    ap.add_argument("--quick", action="store_true", help="a seconds-long smoke run of the same code (CI); figures mean nothing")
    args = ap.parse_args()
    if args.quick:
        args.n, args.repeat = 300, 1

    from pycocoevalcap.cider.cider import Cider

    from medmo.eval.metrics.cider import cider

    rng = random.Random(args.seed)
    preds = [synth_report(rng) for _ in range(args.n)]
    refs = [synth_report(rng) for _ in range(args.n)]

    gts, res = {i: [r] for i, r in enumerate(refs)}, {i: [p] for i, p in enumerate(preds)}
    t_ref, t_ours = float("inf"), float("inf")
    for _ in range(args.repeat):  # best of N: the machine may be shared
        t0 = time.perf_counter()
        ref_mean, ref_scores = Cider().compute_score(gts, res)
        t_ref = min(t_ref, time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours = cider(preds, refs, tokenize=False)
        t_ours = min(t_ours, time.perf_counter() - t0)

    diff = np.abs(np.array([r["cider_d"] for r in ours["per_sample"]]) - np.asarray(ref_scores)).max()
    print(f"pairs: {args.n}")
    print(f"pycocoevalcap Cider: {t_ref:.3f} s  (CIDEr-D {ref_mean:.6f})")
    print(f"medmo cider (D):     {t_ours:.3f} s  (CIDEr-D {ours['aggregate']['cider_d']:.6f})")
    print(f"speedup: {t_ref / t_ours:.1f}x")
    print(f"max abs per-sample difference: {diff:.3e}")


if __name__ == "__main__":
    main()
