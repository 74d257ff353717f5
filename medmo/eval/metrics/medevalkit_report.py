"""MedEvalKit's report-generation metrics (``utils/Metrics_Compute/cal_report_metrics.py`` at 9b12e3b).

Per benchmark (IU-Xray, MIMIC-CXR, CheXpert Plus): reference ``Findings: {findings} Impression:
{impression}.``; an empty response is skipped by every metric but still counts in the BLEU / ROUGE
denominators (so as 0) and is left out of CIDEr; BLEU-1..4 and ROUGE-1/2/L are sentence-averaged
(:mod:`medmo.eval.metrics.medevalkit_text`); CIDEr is ``cidereval.cider`` with its defaults: plain CIDEr (no
clipping, no length penalty) over Stanford-PTB tokens, with the **COCO-val document frequencies** and
reference length shipped as the package's ``data/coco-val.p`` (not computed from the evaluated set).

Where this differs from running MedEvalKit, on purpose:

* MedEvalKit's script aborts on a response made only of periods (``Hypothesis is empty``) or on a very long
  ``.``-free answer (RecursionError in rouge); here such a sample scores 0 on BLEU/ROUGE, stays in CIDEr,
  and is named in ``per_sample`` (``mek_crash``) and in the aggregate ``mek_crashes``.
* The COCO document frequencies are not redistributed with MedMO: give the file with ``MEDMO_COCO_DF``
  (cidereval's ``coco-val.p`` pickle, or a JSON ``{"ref_len": float, "df": {"w1 w2": count}}``) or install
  ``cidereval``, and ``cider`` is MedEvalKit's number. Without it, ``cider`` is what cidereval computes with
  ``df="corpus"``: document frequencies of the benchmark's own references (each sample's reference set
  counted once per n-gram) and ``log(number of samples)`` as reference length. The results name this
  deviation (``deviations["cider_df"]``, the note, and ``df=corpus`` in the version), as it is not
  MedEvalKit's number. ``df_path="corpus"`` asks for it explicitly.
* Tokens come from Stanford's PTBTokenizer when Java and the CoreNLP 3.4.1 jar are found (``MEDMO_PTB_JAR``,
  else the jar inside ``pycocoevalcap``); otherwise from :func:`~medmo.eval.metrics._ngrams.ptb_lite`, and
  the version string says so.
* METEOR (needs NLTK's WordNet data), RaTEScore and GREEN (model-based) are not computed by this metric.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pickle
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from medmo.eval.metrics._ngrams import ptb_lite
from medmo.eval.metrics.medevalkit_text import RougeError, report_bleu, rouge_scores

REPORT_VERSION = "report-medevalkit-2 (MedEvalKit@9b12e3b)"
PTB_PUNCT = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
                       "...", ";"])
KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge1", "rouge2", "rougeL")


def reference_text(findings: str | None, impression: str | None) -> str:
    """MedEvalKit's reference report: ``Findings: {findings} Impression: {impression}.`` (raw sections)."""
    return f"Findings: {findings or ''} Impression: {impression or ''}."


def ptb_jar() -> Path | None:
    """The CoreNLP 3.4.1 jar coco-caption uses: ``MEDMO_PTB_JAR``, else pycocoevalcap's copy; None if absent."""
    if os.environ.get("MEDMO_PTB_JAR"):
        return Path(os.environ["MEDMO_PTB_JAR"])
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec and spec.submodule_search_locations:
        jar = Path(next(iter(spec.submodule_search_locations))) / "tokenizer" / "stanford-corenlp-3.4.1.jar"
        return jar if jar.is_file() else None
    return None


def ptb_tokenize(texts: Sequence[str]) -> tuple[list[list[str]], str]:
    """Tokens of each text as cidereval's PTBTokenizer gives them, and which tokenizer was used."""
    jar = ptb_jar()
    if jar is not None and shutil.which("java"):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
            f.write("\n".join(t.replace("\n", " ") for t in texts))
        try:
            out = subprocess.run(["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer",
                                  "-preserveLines", "-lowerCase", f.name], capture_output=True, check=True)
        finally:
            os.unlink(f.name)
        lines = out.stdout.decode("utf-8").split("\n")
        if len(lines) >= len(texts):
            return [[w for w in line.rstrip().split(" ") if w not in PTB_PUNCT] for line in lines[: len(texts)]], "ptb"
    return [ptb_lite(t) for t in texts], "ptb_lite"


def load_document_frequencies(path: str | os.PathLike | None = None) -> tuple[float, dict[tuple, float]]:
    """``(ref_len, df)`` from ``path``, ``MEDMO_COCO_DF`` or the installed cidereval's ``coco-val.p``.

    Raises:
        FileNotFoundError: none found; the message says where to get the file.
    """
    path = path or os.environ.get("MEDMO_COCO_DF")
    if not path:
        spec = importlib.util.find_spec("cidereval")
        if spec and spec.submodule_search_locations:
            cand = Path(next(iter(spec.submodule_search_locations))) / "data" / "coco-val.p"
            path = cand if cand.is_file() else None
    if not path or not Path(path).is_file():
        raise FileNotFoundError(
            "MedEvalKit's CIDEr uses the COCO-val document frequencies of the cidereval package "
            "(github.com/michelecafagna26/cider, cidereval/data/coco-val.p); set MEDMO_COCO_DF to that file"
        )
    p = Path(path)
    if p.suffix == ".json":
        d = json.loads(p.read_text(encoding="utf-8"))
        return float(d["ref_len"]), {tuple(k.split(" ")): float(v) for k, v in d["df"].items()}
    with p.open("rb") as f:  # a pickle: only load files you trust (the cidereval package's own)
        d = pickle.load(f, encoding="iso-8859-1")
    return float(d["ref_len"]), {tuple(k): float(v) for k, v in d["df"].items()}


def _vec(tokens: list[str], ref_len: float, df: dict, n: int = 4):
    counts = Counter(tuple(tokens[i : i + k]) for k in range(1, n + 1) for i in range(len(tokens) - k + 1))
    vec = [{} for _ in range(n)]
    norm = [0.0] * n
    for g, tf in counts.items():
        w = float(tf) * (ref_len - math.log(max(1.0, df.get(g, 0.0))))
        vec[len(g) - 1][g] = w
        norm[len(g) - 1] += w * w
    return vec, [math.sqrt(x) for x in norm]


def cider_plain(hyps: list[list[str]], refs: list[list[list[str]]], ref_len: float, df: dict) -> list[float]:
    """Per-sample plain CIDEr (cidereval ``Cider``) with fixed document frequencies, x10."""
    out = []
    for hyp, rs in zip(hyps, refs):
        vh, nh = _vec(hyp, ref_len, df)
        total = [0.0] * 4
        for r in rs:
            vr, nr = _vec(r, ref_len, df)
            for k in range(4):
                dot = sum(w * vr[k].get(g, 0.0) for g, w in vh[k].items())
                total[k] += dot / (nh[k] * nr[k]) if nh[k] != 0 and nr[k] != 0 else dot
        out.append(sum(total) / 4 / len(rs) * 10.0)
    return out


def corpus_document_frequencies(refs: list[list[list[str]]], n: int = 4) -> tuple[float, dict[tuple, float]]:
    """cidereval's ``df="corpus"`` table: per n-gram, the number of samples whose references contain it;
    ``log(number of samples)`` as reference length."""
    df: Counter = Counter()
    for rs in refs:
        df.update({tuple(r[i : i + k]) for r in rs for k in range(1, n + 1) for i in range(len(r) - k + 1)})
    return (math.log(float(len(refs))) if refs else 0.0), {g: float(c) for g, c in df.items()}


def report_medevalkit(predictions: Sequence[str], references: Sequence[str], *, df_path: str | None = None) -> dict:
    """Score reports as MedEvalKit does (module docstring); ``references`` as :func:`reference_text` builds them.

    ``df_path``: the document-frequency file (default ``MEDMO_COCO_DF``, then the installed cidereval's), or
    ``"corpus"`` for cidereval's ``df="corpus"`` (also the fallback when no file is found, named in
    ``deviations``).
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    n, rows, sums, crashes = len(predictions), [], dict.fromkeys(KEYS, 0.0), 0
    for pred, ref in zip(predictions, references):
        pred = pred or ""
        if pred == "":
            rows.append({**dict.fromkeys(KEYS, 0.0), "mek_skipped": True})
            continue
        row = {f"bleu{k}": report_bleu(pred, ref, k) for k in (1, 2, 3, 4)}
        try:
            r = rouge_scores(pred.lower(), ref.lower())
            row.update({"rouge1": r["rouge-1"], "rouge2": r["rouge-2"], "rougeL": r["rouge-l"]})
        except RougeError as e:
            row.update({"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "mek_crash": str(e)})
            row.update({f"bleu{k}": 0.0 for k in (1, 2, 3, 4)})
            crashes += 1
        for k in KEYS:
            sums[k] += row[k]
        rows.append(row)
    agg: dict[str, float | None] = {k: (sums[k] / n if n else 0.0) for k in KEYS}
    agg["mek_crashes"] = float(crashes)
    version, deviation = _cider_into(rows, predictions, references, agg, df_path)
    out: dict = {"aggregate": agg, "per_sample": rows, "version": version}
    if deviation:
        out["note"] = deviation
        out["deviations"] = {"cider_df": deviation}
    return out


def _cider_into(rows, predictions, references, agg, df_path) -> tuple[str, str]:
    """Per-sample and mean CIDEr into ``rows`` / ``agg``; returns the version and the deviation (if any)."""
    keep = [i for i, p in enumerate(predictions) if (p or "") != ""]
    if not keep:
        agg["cider"] = None
        return REPORT_VERSION, ""
    toks, how = ptb_tokenize([predictions[i].lower() for i in keep] + [references[i].lower() for i in keep])
    hyps, refs = toks[: len(keep)], [[t] for t in toks[len(keep) :]]
    deviation, missing = "", ""
    if df_path != "corpus":
        try:
            ref_len, df = load_document_frequencies(df_path)
        except FileNotFoundError as e:
            missing = f"{e}. "
    if df_path == "corpus" or missing:
        ref_len, df = corpus_document_frequencies(refs)
        deviation = (f"cider uses document frequencies of this benchmark's own {len(refs)} reference report(s) "
                     "(cidereval df='corpus'), not the COCO-val table of MedEvalKit's cidereval default, so it "
                     f"is not MedEvalKit's number. {missing}").strip()
    scores = cider_plain(hyps, refs, ref_len, df)
    for i, s in zip(keep, scores):
        rows[i]["cider"] = s
    agg["cider"] = sum(scores) / len(scores) if scores else None
    return f"{REPORT_VERSION} tokens={how} df={'corpus' if deviation else 'file'}", deviation
