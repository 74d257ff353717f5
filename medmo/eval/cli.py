"""``medmo eval``: run benchmarks, list them, score prediction files, build tables.

Examples::

    medmo eval list
    medmo eval run runs/nano/model --bench nano --data nano=runs/nano/data --limit 20
    medmo eval run MedMO-8B --backend openai --base-url http://127.0.0.1:8000/v1 --bench vqa_rad \\
        --data vqa_rad=/data/vqa_rad
    medmo eval table runs/eval/results-*.json --out runs/tables
    medmo eval run MedMO-8B --backend openai --base-url http://127.0.0.1:8000/v1 --bench vqa_rad --shard 0/2
    medmo eval merge runs/eval/results-MedMO-8B-standard.shard-*-of-2.json
    torchrun --nproc_per_node 8 -m medmo.cli eval run MBZUAI/MedMO-8B --bench vqa_rad --data vqa_rad=... --shard auto
    medmo eval diff runs/a/results-MedMO-8B-standard.json runs/b/results-MedMO-8B-medevalkit.json
"""

from __future__ import annotations

import argparse

from medmo.model.flags import add_load_flags, load_kwargs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate models on MedMO's benchmarks and build result tables")
    esub = p.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND")

    run = esub.add_parser("run", help="evaluate a model on benchmarks (cached, resumable)")
    run.add_argument("model", nargs="+", help="model folders or hub ids (hf; several are evaluated one after "
                     "another), the served model name (openai), or training "
                     "records (baseline: majority answers and the mean box, without the image)")
    run.add_argument("--bench", required=True, help="benchmark names or groups, comma-separated (see `medmo eval list`)")
    run.add_argument("--backend", choices=("hf", "openai", "baseline"), default="hf")
    run.add_argument("--name", help="the model's name in results and tables (default: the folder's name; one model)")
    run.add_argument("--base-url", help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1; several, "
                     "comma-separated, share the requests (a bearer key, if needed, is read from MEDMO_API_KEY)")
    run.add_argument("--concurrency", type=int, default=8, help="requests in flight (openai backend)")
    run.add_argument("--attn-implementation", help="hf backend: sdpa, eager or flash_attention_2")
    add_load_flags(run)
    run.add_argument("--limit", type=int, help="only the first N samples of each benchmark")
    run.add_argument("--batch-size", type=int, default=8)
    run.add_argument("--preset", choices=("standard", "medevalkit"), default="standard",
                     help="scoring rules: standard (ours) or medevalkit (MedEvalKit's verdicts, per benchmark)")
    run.add_argument("--prompts", choices=("ours", "medevalkit", "medevalkit_reasoning"), default="ours",
                     help="prompt wording: ours (MedMO's documented prompts) or MedEvalKit's")
    run.add_argument("--seed", type=int, default=0, help="seed of the bootstrap confidence intervals")
    run.add_argument("--shard", help="I/N: evaluate every N-th sample from the I-th (0-based), then `medmo eval "
                     "merge`; auto: under torchrun / accelerate launch, each process takes its shard and its GPU and "
                     "the first merges")
    run.add_argument("--retry-failed", action="store_true", help="generate again samples recorded as failed")
    run.add_argument("--out", default="runs/eval", help="output folder (reuse it to resume)")
    run.add_argument("--data", action="append", metavar="NAME=PATH", help="dataset folder; repeatable")
    run.add_argument("--judge-url", help="OpenAI-compatible endpoint of an LLM judge, run as MedEvalKit runs it: "
                     "its prompt, its verdict replacing the rule (off by default)")
    run.add_argument("--judge-model", help="the judge's model name (with --judge-url)")
    run.set_defaults(func=_run)

    lst = esub.add_parser("list", help="list the registered benchmarks")
    lst.add_argument("--group", help="only one group: vqa, text_qa, report, grounding, nano")
    lst.set_defaults(func=_list)

    sc = esub.add_parser("score", help="score a predictions file (JSONL with prediction and reference)")
    sc.add_argument("file")
    sc.add_argument("--metric", action="append", help="metric name; repeatable (default: by the file's task)")
    sc.add_argument("--preset", choices=("standard", "medevalkit"), default="standard")
    sc.add_argument("--task", help="task of every record (default: each record's task field)")
    sc.add_argument("--units", choices=("grid", "pixel"), default="grid", help="units of predicted boxes")
    sc.add_argument("--bench", help="the benchmark the file belongs to (default: from the file name)")
    sc.add_argument("--seed", type=int, default=0, help="seed of the bootstrap confidence intervals")
    sc.add_argument("--per-sample", action="store_true", help="print per-sample scores too")
    sc.set_defaults(func=_score)

    mg = esub.add_parser("merge", help="join shard results (eval run --shard I/N) and score the whole set once")
    mg.add_argument("results", nargs="+", help="the shards' results-*.shard-I-of-N.json files")
    mg.add_argument("--out", help="folder of the merged results (default: the shards' folder)")
    mg.set_defaults(func=_merge)

    df = esub.add_parser("diff", help="which settings differ between two results files and how each benchmark moved")
    df.add_argument("a")
    df.add_argument("b")
    df.add_argument("--json", action="store_true", help="print the diff as JSON")
    df.set_defaults(func=_diff)

    tb = esub.add_parser("table", help="tables (Markdown, CSV, PNG) from one or more results files")
    tb.add_argument("results", nargs="+", help="results-*.json files; one row each")
    tb.add_argument("--out", default="runs/tables")
    tb.add_argument("--no-plots", action="store_true", help="skip the bar charts")
    tb.set_defaults(func=_table)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from medmo.eval.backends import make_backend
    from medmo.eval.cache import slug
    from medmo.eval.data import data_root, parse_data_args
    from medmo.eval.registry import resolve
    from medmo.eval.report_html import grounding_page
    from medmo.eval.runner import evaluate
    from medmo.eval.tables import build_tables, to_markdown, write_tables

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = parse_data_args(args.data)
    for bench in resolve(args.bench):  # name and data mistakes surface before a model is loaded
        data_root(bench, data)
    if args.backend == "openai":
        kw = {"concurrency": args.concurrency}
    elif args.backend == "baseline":
        kw = {}
    else:
        kw = {"attn_implementation": args.attn_implementation, **load_kwargs(args)}
    if args.name and len(args.model) > 1:
        raise ValueError("--name names one model; several models are named by their folders")
    shard, launched = None, args.shard == "auto"
    if launched:
        from medmo.eval import launched as launcher

        shard = launcher.auto_shard()
        launched = shard is not None
    elif args.shard:
        i, sep, n = args.shard.partition("/")
        if not (sep and i.strip().isdigit() and n.strip().isdigit()):
            raise ValueError(f"--shard expects I/N (e.g. 0/4) or auto, got {args.shard!r}")
        shard = (int(i), int(n))
    judge = None
    if args.judge_url or args.judge_model:
        from medmo.eval.metrics.judge import JudgeConfig

        if not (args.judge_url and args.judge_model):
            raise ValueError("the LLM judge needs both --judge-url and --judge-model")
        judge = JudgeConfig(args.judge_url, args.judge_model)
    out = Path(args.out)
    if launched:
        launcher.join()  # before any model loads: a wrong rendezvous fails at once
    for model in args.model:  # one process for several checkpoints: imports and data are read once
        backend = make_backend(args.backend, model, base_url=args.base_url, **kw)
        res = evaluate(backend, args.bench, out_dir=args.out, limit=args.limit, batch_size=args.batch_size,
                       preset=args.preset, data=data, judge=judge, model_name=args.name, prompts=args.prompts,
                       seed=args.seed, shard=shard, retry_failed=args.retry_failed)
        if launched:
            from medmo.eval.merge import merge

            paths = launcher.gather_paths(res["path"])  # waits for every shard
            if paths is None:
                print(f"shard {shard[0]}/{shard[1]}: {res['path']} (the first process merges)")
                continue
            res = merge(paths)
        write_tables([res], out / "tables")
        page_name = "grounding.html" if len(args.model) == 1 else f"grounding-{slug(res['model'])}.html"
        page = grounding_page(res, out / page_name)
        print("".join(to_markdown(t) for t in build_tables([res])))
        print(f"results: {res['path']}\ntables: {out / 'tables'}" + (f"\ngrounding page: {page}" if page else ""))
    if launched:
        launcher.leave()
    return 0


def _list(args: argparse.Namespace) -> int:
    from medmo.eval.registry import GROUPS, benchmarks

    if args.group and args.group not in GROUPS:
        raise ValueError(f"unknown group {args.group!r}; use one of {', '.join(GROUPS)}")
    rows = [("NAME", "GROUP", "TITLE", "DATA", "VERSION", "TABLE METRICS")]
    rows += [(b.name, b.group, b.title, f"--data {b.data_key}=PATH", f"v{b.version}", ",".join(b.headline))
             for b in benchmarks(args.group)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _score(args: argparse.Namespace) -> int:
    import json

    from medmo.eval.score import score_file

    res = score_file(args.file, metrics=args.metric, preset=args.preset, task=args.task, units=args.units,
                     bench=args.bench, seed=args.seed)
    if not args.per_sample:
        res = {k: v for k, v in res.items() if k != "per_sample"}
    print(json.dumps(res, indent=2, default=str))
    return 0


def _table(args: argparse.Namespace) -> int:
    from pathlib import Path

    from medmo.eval.cache import slug
    from medmo.eval.report_html import grounding_page
    from medmo.eval.runner import load_results
    from medmo.eval.tables import build_tables, to_markdown, write_tables

    results = [load_results(p) for p in args.results]
    written = write_tables(results, args.out, plots=not args.no_plots)
    for res in results:  # grounding pages for results whose predictions files are still there
        page = grounding_page(res, Path(args.out) / f"grounding-{slug(str(res['model']))}.html")
        if page:
            written[page.name] = page
    print("".join(to_markdown(t) for t in build_tables(results)))
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


def _merge(args: argparse.Namespace) -> int:
    from medmo.eval.merge import merge
    from medmo.eval.tables import build_tables, to_markdown

    res = merge(args.results, args.out)
    print("".join(to_markdown(t) for t in build_tables([res])))
    print(f"merged results: {res['path']}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    import json

    from medmo.eval.manifest import diff, diff_markdown
    from medmo.eval.runner import load_results

    d = diff(load_results(args.a), load_results(args.b))
    print(json.dumps(d, indent=2, default=str) if args.json else diff_markdown(d, args.a, args.b), end="")
    return 0
