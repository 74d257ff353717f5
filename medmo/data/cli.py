"""``medmo data ...``: list sources, validate record files, build the Cell set and mixtures, export, synth.

Only argparse is imported here; each handler imports its library function when it runs.
"""

from __future__ import annotations

import argparse


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

    p = cmds.add_parser("cells", help="build the microscopy Cell grounding set (default: scikit-image's bundled images)")
    p.add_argument("--images", help="folder of microscopy images (needs --masks)")
    p.add_argument("--masks", help="folder of instance-label or binary masks, matched to images by file stem")
    p.add_argument("--out", required=True, help="output folder (tiles + cells.jsonl)")
    p.add_argument("--tile-size", type=int, default=512, help="tile side in pixels (default 512)")
    p.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels (default 64)")
    p.add_argument("--min-area", type=int, default=20, help="drop cells smaller than this many pixels (default 20)")
    p.add_argument("--watershed", action="store_true", help="split touching cells of binary masks by watershed")
    p.add_argument("--split", default="train", help="split written into the records (default train)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tiling order (default 0)")
    p.set_defaults(func=_cells)

    p = cmds.add_parser("build", help="build a training mixture (weighted, deduplicated, decontaminated shards)")
    p.add_argument("mixture", help="mixture YAML, or a shipped mixture by name (e.g. nano/mixture; see `medmo recipes`)")
    p.add_argument("--out", required=True, help="output folder for the Parquet shards and mixture_report.json")
    p.add_argument("--report-only-contamination", action="store_true",
                   help="keep training records whose image is in an evaluation split; only list them")  # fmt: skip
    p.set_defaults(func=_build)

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

    stats = ReadStats()
    try:
        for _ in read_records(args.file, strict=args.strict, stats=stats, check_images=args.check_images):
            pass
    except RecordFileError as e:
        print(f"invalid record: {e}")
        return 1
    print(stats.summary())
    return 1 if stats.skipped else 0


def _cells(args: argparse.Namespace) -> int:
    import json

    from medmo.data.cells import CellOptions, build_cells

    opts = CellOptions(tile_size=args.tile_size, overlap=args.overlap, min_area=args.min_area, watershed=args.watershed)
    report = build_cells(args.out, images_dir=args.images, masks_dir=args.masks, options=opts, split=args.split,
                         seed=args.seed)
    print(json.dumps(report, indent=2))
    return 0


def _build(args: argparse.Namespace) -> int:
    from medmo.data.mixture import build_mixture

    report = build_mixture(args.mixture, args.out, report_only_contamination=args.report_only_contamination or None)
    c = report["contamination"]
    print(f"{report['written']} records in {len(report['shards'])} shards under {args.out}")
    for s in report["sources"]:
        print(f"  {s['source']}: read {s['read']}, skipped {s['skipped']}, duplicates {s['duplicates']}, "
              f"contaminated {s['contaminated']}, selected {s['selected']}")  # fmt: skip
    print(f"contaminated records ({c['mode']}): {c['count']}; report: {args.out}/mixture_report.json")
    lost = [s for s in report["sources"] if s["read"] and not s["available"]]
    if lost:  # a mixture silently missing a whole source would train on something else than asked
        raise ValueError("; ".join(f"source {s['source']} lost all {s['read']} records ({s['skip_reasons']})"
                                   for s in lost) + ". Check that its image paths resolve from its folder")
    return 0


def _export(args: argparse.Namespace) -> int:
    from medmo.data.export import export

    r = export(args.file, args.out, args.format, think=args.think, embed_images=args.embed_images)
    print(f"{r['written']} records -> {r['path']} ({r['format']}; {r['rendered_images']} images rendered to PNG)")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from medmo.data.synth import build_nano

    paths = build_nano(args.out, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                       image_size=args.image_size, seed=args.seed)  # fmt: skip
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0
