"""``medmo ask``, ``medmo ground`` and ``medmo report``: one image, one answer, printed.

For research only; the answers are not medical advice.
"""

from __future__ import annotations

import argparse

from medmo.model.flags import add_load_flags, add_sampling_flags, load_kwargs, sampling_kwargs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="answer a question about a medical image (research use only)")
    _common(p)
    p.add_argument("question", help='the question, e.g. "Which organ is shown?"')
    p.add_argument("--closed", action="store_true", help="ask for a one-word answer (closed question)")
    p.set_defaults(func=_ask)

    p = sub.add_parser("ground", help="find boxes of a target in an image; prints JSON boxes in pixels")
    _common(p)
    p.add_argument("target", help='what to locate, e.g. "lung nodule"')
    p.add_argument("--out", help="write a PNG of the image with the boxes drawn here")
    p.set_defaults(func=_ground)

    p = sub.add_parser("report", help="write a report (findings and impression) for an image")
    _common(p)
    p.set_defaults(func=_report)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint folder or hub id (e.g. runs/nano/sft or MBZUAI/MedMO-8B)")
    p.add_argument("image", help="image file: PNG/JPEG/TIFF, DICOM (.dcm) or NIfTI (.nii/.nii.gz)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="answer length limit in tokens (default 256)")
    add_load_flags(p)
    add_sampling_flags(p)


def _model(args: argparse.Namespace):  # noqa: ANN202 - lazy import keeps `medmo --help` instant
    from medmo.infer.api import MedMO

    return MedMO.from_pretrained(args.model, max_new_tokens=args.max_new_tokens, **load_kwargs(args))


def _ask(args: argparse.Namespace) -> int:
    print(_model(args).ask(args.image, args.question, closed=args.closed, **sampling_kwargs(args)))
    return 0


def _report(args: argparse.Namespace) -> int:
    print(_model(args).report(args.image, **sampling_kwargs(args)))
    return 0


def _ground(args: argparse.Namespace) -> int:
    import json
    import sys

    model = _model(args)
    boxes, text = model.ground_with_text(args.image, args.target, **sampling_kwargs(args))
    print(json.dumps({"target": args.target, "boxes": [b.to_dict() for b in boxes], "text": text}, indent=2))
    if args.out:
        from medmo.infer.api import render_image
        from medmo.infer.draw import draw_boxes

        draw_boxes(render_image(args.image), boxes).save(args.out, format="PNG")
        print(f"wrote {args.out} ({len(boxes)} boxes)", file=sys.stderr)
    if not boxes:
        print("no box found in the model's answer", file=sys.stderr)
    return 0
