"""Evaluation: every benchmark of MedMO's tables, versioned scoring, batched and resumable runs, tables.

Entry points (imported on use; ``import medmo.eval`` loads nothing heavy):

- :func:`medmo.eval.runner.evaluate` -- a model (or backend) x benchmarks -> cached predictions, scores
  and a results file recording every setting and version;
- :mod:`medmo.eval.registry` -- benchmarks registered by name from ``benchmarks/*.yaml``;
- :mod:`medmo.eval.tasks` -- per-benchmark prompt / gold / scoring glue over :mod:`medmo.eval.metrics`;
- :mod:`medmo.eval.backends` -- local transformers (``hf``) and OpenAI-compatible (``openai``) generation;
- :mod:`medmo.eval.tables` and :mod:`medmo.eval.report_html` -- MedMO-layout tables, bar charts and the
  grounding predictions page;
- ``medmo eval run | list | score | table`` (:mod:`medmo.eval.cli`).
"""
