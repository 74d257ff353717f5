"""``medmo speedrun``: train a nano MedMO end to end on CPU and report what it learned.

One readable script in the spirit of nanochat's ``speedrun.sh``: build the nano data and a Cell set,
train a BPE tokenizer, build a nano Qwen3-VL (DeepStack kept), run MedMO's three stages (alignment,
instruction tuning, GRPO), evaluate a trivial baseline and every stage on the nano suite, and write
``runs/<name>/report.md`` and ``report.html``.

Each stage runs in its own process so its wall time and peak memory (``os.wait4``'s ``ru_maxrss``) are
measured exactly, and a finished stage leaves ``stages/<stage>.json``: running the command again
resumes after the last finished stage (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

STAGES = ("data", "model", "align", "sft", "grpo", "eval", "report")
RECIPES = Path(__file__).resolve().parent.parent / "recipes" / "nano"


@dataclass
class SpeedrunConfig:
    """Sizes of a speedrun. ``quick`` is the CI variant: the same code path with fewer steps.

    Attributes:
        name: run folder under ``out``.
        out: parent folder of runs.
        n_train / n_val / n_test: nano dataset images per split (each image yields ~6 records).
        grounding_weight: extra copies of each grounding record in the instruction-tuning mixture.
        caption_weight: extra copies of each caption record (captions name the modality and every finding).
        align_steps / sft_steps / grpo_steps: optimizer steps per stage.
        grpo_batch: prompts per GRPO step, each sampled ``num_generations`` times (recipes/nano/grpo.yaml).
        eval_limit: samples per nano benchmark at evaluation (None: the whole test split).
        seed: one seed for data, model and training.
    """

    name: str = "nano"
    out: str = "runs"
    n_train: int = 5000
    n_val: int = 100
    n_test: int = 200
    grounding_weight: float = 7.0
    caption_weight: float = 2.0
    align_steps: int = 100
    sft_steps: int = 2600
    grpo_steps: int = 150
    grpo_batch: int = 16
    eval_limit: int | None = None
    vocab_size: int = 1024
    seed: int = 0

    @classmethod
    def quick(cls, **kw) -> SpeedrunConfig:
        base = dict(n_train=40, n_val=8, n_test=16, align_steps=3, sft_steps=10, grpo_steps=2, grpo_batch=4,
                    eval_limit=4)
        return cls(**{**base, **kw})

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.name


# ---------------------------------------------------------------------------------------- stages


def stage_data(cfg: SpeedrunConfig) -> dict:
    """Nano data, a Cell set, and the instruction-tuning mixture (grounding up-weighted, decontaminated)."""
    from medmo.data.cells import build_cells
    from medmo.data.mixture import build_mixture
    from medmo.data.synth import build_nano

    data = cfg.run_dir / "data"
    paths = build_nano(data, n_train=cfg.n_train, n_val=cfg.n_val, n_test=cfg.n_test, seed=cfg.seed)
    cells = build_cells(cfg.run_dir / "cells", split="test", seed=cfg.seed)
    # Boxes are the slowest skill to learn and grounding is ~1/9 of the records: repeat it, as MedMO's
    # own mixture up-weights its detection sets. With grounding repeated alone the model stopped reading
    # the modality (every caption began "CT"); repeated captions keep that skill in the mix.
    # Raw lines, not re-serialized records: their image paths stay relative to this same folder.
    by_task: dict[str, list[str]] = {}
    for line in paths["train"].read_text(encoding="utf-8").splitlines():
        if line.strip():
            by_task.setdefault(json.loads(line).get("task"), []).append(f"{line}\n")
    extra = []
    for task, weight in (("grounding", cfg.grounding_weight), ("caption", cfg.caption_weight)):
        (data / f"train_{task}.jsonl").write_text("".join(by_task.get(task, [])), encoding="utf-8")
        extra.append({"records": str(data / f"train_{task}.jsonl"), "weight": weight})
    mix = build_mixture({
        "seed": cfg.seed,
        "dedup": False,  # the repeats are intended
        "sources": [{"records": str(paths["train"])}, *extra],
        "decontaminate_against": [str(paths["validation"]), str(paths["test"])],
    }, data / "sft")
    for src in mix["sources"]:
        if src["read"] and not src["available"]:
            raise RuntimeError(f"instruction-tuning source {src['source']} lost all {src['read']} records "
                               f"({src['skip_reasons']}); check that its image paths resolve from its folder")
    return {"data": {k: str(v) for k, v in paths.items()}, "cells": {k: cells[k] for k in ("records", "samples")},
            "sft_mixture": {"written": mix["written"], "contamination": mix["contamination"].get("mode"),
                            "shards": len(mix["shards"])}}


def stage_model(cfg: SpeedrunConfig) -> dict:
    from medmo.model import build_model, count_parameters, nano_config, save, train_tokenizer
    from medmo.model.cli import corpus_texts
    from medmo.model.processor import build_processor

    tokenizer = train_tokenizer(corpus_texts(str(cfg.run_dir / "data" / "train.jsonl")), vocab_size=cfg.vocab_size)
    model = build_model(nano_config(tokenizer), seed=cfg.seed)
    processor = build_processor(tokenizer, min_pixels=64 * 64, max_pixels=128 * 128)
    save(model, processor, cfg.run_dir / "init")
    return {"parameters": count_parameters(model), "vocab_size": len(tokenizer)}


def _train(cfg: SpeedrunConfig, stage: str, start: str, steps: int) -> dict:
    from medmo.train.recipe import load_recipe

    run = cfg.run_dir
    overrides = [
        f"model={run / start}",
        f"output_dir={run / stage}",
        f"data.train=[{run / 'data' / ('sft' if stage == 'sft' else 'train.jsonl')}]",
        f"max_steps={steps}",
        f"seed={cfg.seed}",
    ]
    if stage == "grpo":
        overrides.append(f"batch_size={cfg.grpo_batch}")
    else:
        overrides.append(f"data.validation=[{run / 'data' / 'validation.jsonl'}]")
    recipe = load_recipe(RECIPES / f"{stage}.yaml", overrides)
    if stage == "grpo":
        from medmo.train.grpo import run as run_stage
    else:
        from medmo.train.sft import run as run_stage
    return {"output": str(run_stage(recipe)), "steps": steps}


def stage_align(cfg: SpeedrunConfig) -> dict:
    return _train(cfg, "align", "init", cfg.align_steps)


def stage_sft(cfg: SpeedrunConfig) -> dict:
    return _train(cfg, "sft", "align", cfg.sft_steps)


def stage_grpo(cfg: SpeedrunConfig) -> dict:
    return _train(cfg, "grpo", "sft", cfg.grpo_steps)


def stage_eval(cfg: SpeedrunConfig) -> dict:
    from medmo.eval.runner import evaluate
    from medmo.eval.backends.baseline import BaselineBackend

    run = cfg.run_dir
    data = {"nano": str(run / "data"), "cell": str(run / "cells")}
    out = run / "eval"
    results = {}
    baseline = BaselineBackend.from_records(run / "data" / "train.jsonl")
    results["baseline"] = evaluate(baseline, "nano", out_dir=out, limit=cfg.eval_limit, data=data)["path"]
    for stage in ("align", "sft", "grpo"):
        # 32 prompts per batch: a quarter less time than the default 8 for the nano model, same outputs.
        r = evaluate(str(run / stage), "nano", out_dir=out, limit=cfg.eval_limit, data=data, batch_size=32,
                     model_name=f"nano-{stage}")  # fmt: skip
        results[stage] = r["path"]
    return {"results": results, "headroom": _headroom(cfg)}


def _headroom(cfg: SpeedrunConfig) -> dict:
    """Box reward of greedy vs sampled vs best-of-group answers on test grounding prompts, before and
    after GRPO, sampled as the GRPO stage samples (its temperature and group size). The first 100
    prompts: enough to see the gap between greedy and best-of-group, in ~7 s per model on 2 cores."""
    from medmo.data.io import read_records
    from medmo.train.headroom import headroom
    from medmo.train.recipe import load_recipe

    g = load_recipe(RECIPES / "grpo.yaml").grpo
    prompts = [s for s in read_records(cfg.run_dir / "data" / "test.jsonl") if s.task == "grounding"]
    prompts = prompts[: min(cfg.eval_limit or 100, 100)]
    return {stage: headroom(str(cfg.run_dir / stage), prompts, k=g.num_generations, temperature=g.temperature,
                            max_new_tokens=g.max_completion_length, seed=cfg.seed)["grounding"]
            for stage in ("sft", "grpo")}  # fmt: skip


def stage_report(cfg: SpeedrunConfig) -> dict:
    from medmo.speedrun_report import write_report

    return {k: str(v) for k, v in write_report(cfg.run_dir, asdict(cfg)).items()}


# ---------------------------------------------------------------------------------------- driver


def _run_stage_process(cfg: SpeedrunConfig, stage: str) -> dict:
    """Run one stage in a child process; return its wall time, peak RSS and result."""
    marker = cfg.run_dir / "stages" / f"{stage}.json"
    cmd = [sys.executable, "-m", "medmo.speedrun", "--stage", stage, "--config", json.dumps(asdict(cfg))]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(
            f"speedrun stage {stage!r} failed (exit {code}); finished stages are kept in {cfg.run_dir}/stages, "
            "so fix the cause and run the same command again to resume"
        )
    result = json.loads(marker.read_text()) if marker.exists() else {}
    result.update(seconds=round(seconds, 1), peak_rss_mb=round(usage.ru_maxrss / 1024, 1))
    marker.write_text(json.dumps(result, indent=2))
    return result


def speedrun(cfg: SpeedrunConfig, *, fresh: bool = False) -> Path:
    """Run every stage not finished yet; return the report path."""
    stages_dir = cfg.run_dir / "stages"
    if fresh and cfg.run_dir.exists():
        import shutil

        shutil.rmtree(cfg.run_dir)
    stages_dir.mkdir(parents=True, exist_ok=True)
    for stage in STAGES:
        marker = stages_dir / f"{stage}.json"
        if marker.exists() and "seconds" in json.loads(marker.read_text()):
            print(f"[speedrun] {stage}: done earlier, skipping", flush=True)
            continue
        print(f"[speedrun] {stage} ...", flush=True)
        result = _run_stage_process(cfg, stage)
        print(f"[speedrun] {stage}: {result['seconds']} s, peak {result['peak_rss_mb']} MB", flush=True)
    return cfg.run_dir / "report.md"


def _child(stage: str, cfg: SpeedrunConfig) -> None:
    result = globals()[f"stage_{stage}"](cfg)
    (cfg.run_dir / "stages" / f"{stage}.json").write_text(json.dumps(result, indent=2, default=str))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("speedrun", help="train a nano MedMO end to end on CPU and write a report",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--name", default="nano", help="run folder under --out (default nano)")
    p.add_argument("--out", default="runs", help="parent folder of runs (default runs)")
    p.add_argument("--quick", action="store_true", help="the CI variant: same pipeline, far fewer steps")
    p.add_argument("--fresh", action="store_true", help="delete the run folder and start over")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="change one setting, e.g. --set grpo_steps=300 --set sft_steps=3000 (keys: the fields "
                        "of SpeedrunConfig; use a new --name, finished stages of a run are not redone)")
    p.set_defaults(func=_main)


def parse_settings(settings: list[str]) -> dict:
    """``KEY=VALUE`` strings -> SpeedrunConfig fields, values read as YAML (``none`` for None) and
    type-checked against the field by the recipe loader's :func:`medmo.train.recipe.from_dict`.

    Raises:
        ValueError: an unknown key, a missing ``=``, or a value of the wrong type.
    """
    import dataclasses

    import yaml

    from medmo.train.recipe import RecipeError, from_dict

    types = {f.name: f.type for f in dataclasses.fields(SpeedrunConfig) if f.name not in ("name", "out")}
    out = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(types)}")
        try:
            parsed = None if value.lower() == "none" else yaml.safe_load(value)
            out[key] = getattr(from_dict(SpeedrunConfig, {key: parsed}, where="--set"), key)
        except (RecipeError, yaml.YAMLError):
            raise ValueError(f"--set {item!r}: {key} takes {types[key]}") from None
    return out


def _main(args: argparse.Namespace) -> int:
    make = SpeedrunConfig.quick if args.quick else SpeedrunConfig
    cfg = make(name=args.name, out=args.out, **parse_settings(args.settings))
    report = speedrun(cfg, fresh=args.fresh)
    print(f"[speedrun] report: {report} and {report.with_suffix('.html')}")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=STAGES, required=True)
    ap.add_argument("--config", required=True)
    a = ap.parse_args()
    _child(a.stage, SpeedrunConfig(**json.loads(a.config)))
