"""``medmo data ...``: list sources, validate record files, build the Cell set and mixtures, export, synth.

Only argparse is imported here; each handler imports its library function when it runs.
"""

from __future__ import annotations

import argparse

LISTED = 200  # problems ``validate`` lists one by one (all are counted)
SHOWN = 3  # problems of each source and evaluation set ``build`` prints (the report lists more)


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="datasets: sources, validation, the Cell set, mixtures, exports")
    cmds = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    p = cmds.add_parser("sources", help="list the registered dataset sources (tasks, local layout, licence)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_sources)

    p = cmds.add_parser("validate", help="check a records file (.jsonl, .parquet or a shard folder)")
    p.add_argument("file", help="records file or folder of shards")
    p.add_argument("--strict", action="store_true", help="stop at the first bad record (exit code 1)")
    p.add_argument("--check-images", action="store_true", help="also decode every image: missing, truncated or corrupt files (and missing frames) are reported")
    p.set_defaults(func=_validate)

    p = cmds.add_parser("cells", help="build the microscopy Cell grounding set and report its size, shape and density",
                        description="Build MedMO's Cell set from published releases (--from ctc=DIR --from "
                        "tissuenet=DIR --from bacteria=DIR: one record per image with every cell), or tiles from "
                        "--images/--masks (default: scikit-image's bundled images); --stats FILE only reports.")  # fmt: skip
    p.add_argument("--from", dest="sources", action="append", default=[], metavar="SOURCE=DIR",
                   help="a microscopy release in its published layout (ctc, tissuenet, bacteria); repeatable")  # fmt: skip
    p.add_argument("--style", default="medmo-sft", choices=("medmo-sft", "medmo-grpo", "qwen"),
                   help="--from records: MedMO's prompts and boxes (pixels of the 768x768 image / of the original) or "
                   "the 0-1000 grid (default medmo-sft)")  # fmt: skip
    p.add_argument("--max-boxes", type=int, default=100, help="--from: leave out images with more cells (default 100)")
    p.add_argument("--stats", metavar="FILE", help="only report the statistics of an existing records file")
    p.add_argument("--images", help="folder of microscopy images (needs --masks)")
    p.add_argument("--masks", help="folder of instance-label or binary masks, matched to images by file stem")
    p.add_argument("--out", help="output folder (cells.jsonl, cells_stats.json, images/)")
    p.add_argument("--tile-size", type=int, default=512, help="tile side in pixels (default 512)")
    p.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels (default 64)")
    p.add_argument("--min-area", type=int, default=20, help="drop cells smaller than this many pixels (default 20)")
    p.add_argument("--watershed", action="store_true", help="split touching cells of binary masks by watershed")
    p.add_argument("--split", default=None, help="tiles: split written into the records (default train); "
                   "--from: read only this split (default all, each record keeps its own)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="tiles: seed of the tiling order (default 0)")
    p.set_defaults(func=_cells)

    p = cmds.add_parser("build", help="build a training mixture (weighted, deduplicated, decontaminated shards)")
    p.add_argument("mixture", help="mixture YAML (sources, weights/caps, seed, decontaminate_against; or stages), "
                   "or a shipped mixture by name (e.g. nano/mixture; see `medmo recipes`)")
    p.add_argument("--out", required=True, help="output folder for the Parquet shards and mixture_report.json "
                   "(a file of stages without --stage: one sub-folder per stage)")  # fmt: skip
    p.add_argument("--stage", help="which mixture of a file with stages (default: every stage)")
    p.add_argument("--workers", type=int, default=1, help="processes reading and hashing sources (default 1; the "
                   "shards do not depend on it)")  # fmt: skip
    p.add_argument("--data-dir", help="replaces the file's data_dir in {data_dir} paths")
    p.add_argument("--report-only-contamination", action="store_true",
                   help="keep training records that overlap an evaluation set; only count and list them")  # fmt: skip
    p.add_argument("--strict", action="store_true", help="stop at the first bad record (exit code 1; --out is left "
                   "as it was) instead of skipping and reporting it")  # fmt: skip
    p.set_defaults(func=_build)

    p = cmds.add_parser("scan", help="run mixture scan jobs (one shard of one or all sources) for a build across "
                        "machines; finish with 'medmo data merge'")  # fmt: skip
    p.add_argument("mixture", help="mixture YAML")
    p.add_argument("--scans", required=True, help="shared folder for the scan files")
    p.add_argument("--shard", required=True, metavar="K/N", help="this job's shard, e.g. 0/8")
    p.add_argument("--source", type=int, help="only this source (its 0-based position in the file)")
    p.add_argument("--stage", help="which mixture of a file with stages")
    p.add_argument("--data-dir", help="replaces the file's data_dir in {data_dir} paths")
    p.set_defaults(func=_scan)

    p = cmds.add_parser("merge", help="merge finished scan jobs into the mixture's shards (same output as 'build')")
    p.add_argument("mixture", help="mixture YAML")
    p.add_argument("--scans", required=True, help="the folder the scan jobs wrote")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--stage", help="which mixture of a file with stages")
    p.add_argument("--data-dir", help="replaces the file's data_dir in {data_dir} paths")
    p.set_defaults(func=_merge)

    p = cmds.add_parser("export", help="export records for LLaMA-Factory, ms-swift or verl")
    p.add_argument("file", help="records file or folder of shards")
    p.add_argument("--format", required=True, choices=("llamafactory", "swift", "verl"), help="target layout")
    p.add_argument("--out", required=True, help="output file (.jsonl; .parquet for verl)")
    p.add_argument("--think", action="store_true", help="ask for <think>/<answer> reasoning in prompts")
    p.add_argument("--embed-images", action="store_true", help="verl: store PNG bytes instead of image paths")
    p.set_defaults(func=_export)

    p = cmds.add_parser("synth", help="write the procedural nano dataset (images + train/validation/test JSONL)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n-train", type=int, default=2000, help="training images (default 2000)")
    p.add_argument("--n-val", type=int, default=200, help="validation images (default 200)")
    p.add_argument("--n-test", type=int, default=200, help="test images (default 200)")
    p.add_argument("--image-size", type=int, default=128, help="image side in pixels, at least 32 (default 128)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--workers", type=int, help="processes rendering images (default: one per available CPU; "
                   "the files do not depend on it)")  # fmt: skip
    p.set_defaults(func=_synth)


def _sources(args: argparse.Namespace) -> int:
    import json

    from medmo.data.sources import describe

    rows = describe()
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for r in rows:
        tasks = ", ".join(r.get("tasks") or [])
        print(f"{r['name']}  [{tasks}]  licence: {r.get('licence') or r.get('license') or 'see source'}")
        layout = str(r.get("layout") or "").strip()
        for line in layout.splitlines():
            print(f"    {line}")
        if r.get("hub_id"):
            print(f"    or hub id: {r['hub_id']}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from medmo.data.io import ReadStats, RecordFileError, read_records

    stats = ReadStats(max_problems=LISTED)
    try:
        for _ in read_records(args.file, strict=args.strict, stats=stats, check_images=args.check_images):
            pass
    except RecordFileError as e:
        print(f"invalid record: {e}")
        return 1
    print(stats.summary(listed=LISTED))
    return 1 if stats.skipped else 0


def _cells(args: argparse.Namespace) -> int:
    import json

    from medmo.data.cell_stats import cell_stats, format_stats
    from medmo.data.cells import CellOptions, build_cell_set, build_cells
    from medmo.data.io import read_records

    if args.stats:
        stats = cell_stats(read_records(args.stats))
        print(format_stats(stats))
        return 0
    if not args.out:
        raise ValueError("medmo data cells needs --out DIR (or --stats FILE to only report statistics)")
    if args.sources:
        pairs = [tuple(x.split("=", 1)) for x in args.sources]
        bad = [x for x, pair in zip(args.sources, pairs) if len(pair) != 2 or not all(pair)]
        if bad:
            raise ValueError(f"--from takes SOURCE=DIR (e.g. --from ctc=/data/ctc), got {', '.join(bad)}")
        report = build_cell_set(args.out, pairs, split=args.split, style=args.style, max_boxes=args.max_boxes)
        for name, r in report["sources"].items():
            print(f"{name}: {r['records']} records, {r['left_out']} images left out, {r['skipped']} skipped")
            for problem in r["problems"][:5]:
                print(f"    {problem}")
    else:
        opts = CellOptions(tile_size=args.tile_size, overlap=args.overlap, min_area=args.min_area, watershed=args.watershed)
        report = build_cells(args.out, images_dir=args.images, masks_dir=args.masks, options=opts,
                             split=args.split or "train", seed=args.seed)  # fmt: skip
        print(json.dumps(report, indent=2))  # the report (its "stats" included), as JSON
        return 0
    print(format_stats(report["stats"]))
    print(f"records: {report['records']}")
    return 0


def _build(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from medmo.data.mixture import build_mixture
    from medmo.data.mixture_config import stage_names
    from medmo.records import RecordError

    stages = [args.stage] if args.stage else stage_names(args.mixture) or [None]
    for stage in stages:
        out = Path(args.out) / stage if stage and not args.stage else Path(args.out)
        try:
            report = build_mixture(args.mixture, out, report_only_contamination=args.report_only_contamination or None,
                                   workers=args.workers, stage=stage, data_dir=args.data_dir,
                                   strict=args.strict or None)  # fmt: skip
        except RecordError as e:  # strict: the first bad record stops the build
            print(f"medmo data build: invalid record: {e}\n{out} is left as it was: fix or drop the record, or build "
                  "without --strict (and without strict: true in the mixture) to skip and report bad records",
                  file=sys.stderr)  # fmt: skip
            return 1
        _print_report(report, out)
    return 0


def _print_report(report: dict, out: object) -> None:
    c = report["contamination"]
    stage = f"stage {report['stage']}: " if report.get("stage") else ""
    expected = f" (MedMO: {report['expected_records']:,})" if report.get("expected_records") else ""
    print(f"{stage}{report['written']} records{expected} in {len(report['shards'])} shards under {out}")
    for s in report["sources"]:
        if s.get("missing"):
            print(f"  {s['source']}: missing, left out ({s['missing']})")
            continue
        print(f"  {s['source']}: read {s['read']}, skipped {s['skipped']}, duplicates {s['duplicates']}, "
              f"contaminated {s['contaminated']}, selected {s['selected']}")  # fmt: skip
        _print_lines(s.get("problems"))
    _print_eval_sets(c["eval_sets"])
    for pair in c["pairs"]:
        kept = "kept" if pair["kept"] else "dropped"
        print(f"    overlap {pair['train']} x {pair['eval']}: {pair['image']} by image, {pair['text']} by text ({kept})")
    for t in c["trained_on_evaluation_data"]:
        print(f"  note: {t['source']} (split {t['split']}) is trained on although it overlaps "
              f"{', '.join(t['overlaps'])}: {t['note'] or 'allow_contamination is set'}")  # fmt: skip
    print(f"contaminated records ({c['mode']}): {c['count']}; report: {out}/mixture_report.json")
    empty = [s for s in report["sources"] if s.get("read") and not s.get("available")]
    for s in empty:
        if s.get("skipped", 0) < s["read"]:  # removed as duplicates or contaminated: the build did as asked
            print(f"  note: every record of {s['source']} is a duplicate of an earlier source or contaminated "
                  f"({s.get('duplicates', 0)} duplicates, {s.get('contaminated', 0)} contaminated); it adds nothing")
    lost = [s for s in empty if s.get("skipped", 0) >= s["read"]]
    if lost:  # a mixture silently missing a whole source would train on something else than asked
        raise ValueError("; ".join(f"source {s['source']} lost all {s['read']} records ({s['skip_reasons']})"
                                   for s in lost) + ". Check that its image paths resolve from its folder")


def _print_eval_sets(eval_sets: list[dict]) -> None:
    unchecked = [e["eval"] for e in eval_sets if e.get("missing")]
    if unchecked:
        print(f"  not decontaminated against (missing): {', '.join(unchecked)}")
    for e in eval_sets:
        if e.get("skipped"):
            reasons = ", ".join(f"{k}: {v}" for k, v in e["skip_reasons"].items())
            print(f"  evaluation set {e['eval']}: {e['skipped']} records skipped ({reasons}), "
                  "not decontaminated against")  # fmt: skip
            _print_lines(e["problems"])
        if e.get("duplicate_ids"):
            print(f"  evaluation set {e['eval']}: {e['duplicate_ids']} records repeat an earlier record's id "
                  "(still decontaminated against; fix the ids before evaluating)")  # fmt: skip
            _print_lines(e["duplicate_id_examples"])


def _print_lines(lines: list[str] | None) -> None:
    for line in (lines or [])[:SHOWN]:
        print(f"    {line}")
    if len(lines or []) > SHOWN:
        print("    ... (more in mixture_report.json)")


def _scan(args: argparse.Namespace) -> int:
    from medmo.data.mixture import scan_jobs

    k, sep, n = str(args.shard).partition("/")
    if not (sep and k.isdigit() and n.isdigit() and int(k) < int(n)):
        raise ValueError(f"--shard takes K/N with 0 <= K < N, e.g. 0/8; got {args.shard!r}")
    for r in scan_jobs(args.mixture, args.scans, (int(k), int(n)), source=args.source, stage=args.stage,
                       data_dir=args.data_dir):  # fmt: skip
        print(f"source #{r['index']} {r['source']} shard {k}/{n}: {r['read']} records read, {r['skipped']} skipped")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from medmo.data.mixture import merge_scans

    _print_report(merge_scans(args.mixture, args.scans, args.out, stage=args.stage, data_dir=args.data_dir), args.out)
    return 0


def _export(args: argparse.Namespace) -> int:
    from medmo.data.export import export

    r = export(args.file, args.out, args.format, think=args.think, embed_images=args.embed_images)
    print(f"{r['written']} records -> {r['path']} ({r['format']}; {r['rendered_images']} images rendered to PNG)")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from medmo.data.synth import build_nano

    paths = build_nano(args.out, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                       image_size=args.image_size, seed=args.seed, workers=args.workers)  # fmt: skip
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0
