"""``medmo speedrun``: the nano MedMO end to end on CPU, as a chain of the public commands.

The chain is a shipped recipe (``nano/speedrun``, like nanochat's ``runs/speedrun.sh``): data, a Cell set,
the instruction-tuning mixture, a nano Qwen3-VL, MedMO's four stages (alignment, grounding, instruction
tuning, GRPO), evaluation of a trivial baseline and every stage, the sampling headroom GRPO learns from,
and the report (``medmo summary``). Each step runs as its own process inside the run folder, so its wall
time and peak memory (``os.wait4``'s ``ru_maxrss``) are measured exactly; a finished step leaves
``stages/<step>.json`` and running the command again resumes after the last finished step (``--fresh``
starts over).
``medmo summary RUN`` writes the run's ``report.md`` / ``report.html`` (:mod:`medmo.speedrun_report`).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

CHAIN = "nano/speedrun"


def load_chain(recipe: str = CHAIN, *, quick: bool = False, seed: int = 0) -> list[tuple[str, list[str]]]:
    """``(step, argv)`` pairs of a chain recipe, with its ``quick`` additions appended when asked.

    ``{seed}`` in a command is replaced by ``seed``: one number seeds the data, the model's initialisation
    and every stage, so a run is repeated on another draw by changing it alone.

    Raises:
        ValueError: a chain that is not a ``steps`` mapping of ``medmo ...`` commands.
    """
    import yaml

    from medmo import recipes

    raw = yaml.safe_load(recipes.path(recipe).read_text(encoding="utf-8")) or {}
    steps, extra = raw.get("steps"), raw.get("quick") or {}
    if not isinstance(steps, dict) or not steps or set(raw) - {"steps", "quick"}:
        raise ValueError(f"{recipe}: a chain is a mapping with `steps` (name: command) and optional `quick`")
    chain = []
    for name, command in steps.items():
        argv = shlex.split(str(command).replace("{seed}", str(int(seed))))
        if argv[:1] != ["medmo"]:
            raise ValueError(f"{recipe}: step {name!r} must be a `medmo ...` command, got {command!r}")
        if quick:
            argv += [a for pattern, more in extra.items() if fnmatch.fnmatch(name, pattern) for a in shlex.split(more)]
        chain.append((str(name), argv))
    unused = [p for p in extra if not any(fnmatch.fnmatch(n, p) for n, _ in chain)]
    if unused:
        raise ValueError(f"{recipe}: quick names no step for {unused}")
    return chain


def run_step(run: Path, name: str, argv: list[str]) -> dict:
    """Run one ``medmo`` command in ``run``; return and record its wall time and peak RSS.

    Raises:
        RuntimeError: the command failed; finished steps are kept, so the same command resumes.
    """
    marker = run / "stages" / f"{name}.json"
    print(f"$ {shlex.join(argv)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "medmo.cli", *argv[1:]], cwd=run)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"speedrun step {name!r} failed (exit {code}): {shlex.join(argv)}; finished steps are "
                           f"kept in {run}/stages, so fix the cause and run the same command again to resume")
    result = {"command": shlex.join(argv), "seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
    marker.write_text(json.dumps(result, indent=2))
    print(f"[speedrun] {name}: {result['seconds']} s, peak {result['peak_rss_mb']} MB", flush=True)
    return result


def speedrun(run: str | Path, *, recipe: str = CHAIN, quick: bool = False, fresh: bool = False, seed: int = 0) -> Path:
    """Run every step of the chain not finished yet in folder ``run``; return the report path."""
    run = Path(run)
    if fresh and run.exists():
        shutil.rmtree(run)
    (run / "stages").mkdir(parents=True, exist_ok=True)
    chain = load_chain(recipe, quick=quick, seed=seed)
    (run / "stages" / "chain.json").write_text(json.dumps({"recipe": recipe, "quick": quick, "seed": seed,
                                                           "steps": [shlex.join(a) for _, a in chain]}, indent=2))
    for name, argv in chain:
        marker = run / "stages" / f"{name}.json"
        if marker.exists() and json.loads(marker.read_text()).get("command") == shlex.join(argv):
            print(f"[speedrun] {name}: done earlier, skipping", flush=True)
            continue
        run_step(run, name, argv)
    return run / "report.md"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("speedrun", help="train a nano MedMO end to end on CPU and write a report",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--name", help="run folder under --out (default nano; nano-seedS with --seed S)")
    p.add_argument("--out", default="runs", help="parent folder of runs (default runs)")
    p.add_argument("--quick", action="store_true", help="the CI variant: same steps, far fewer images and steps")
    p.add_argument("--fresh", action="store_true", help="delete the run folder and start over")
    p.add_argument("--seed", type=int, default=0, help="seeds the data, the model and every stage (default 0)")
    p.add_argument("--recipe", default=CHAIN, help=f"the chain of commands (default {CHAIN}; "
                   "`medmo recipes cp nano/speedrun my.yaml` to edit one)")
    p.set_defaults(func=_speedrun)

    r = sub.add_parser("summary", help="write a run folder's report: tables, curves, grounding pages, time per step")
    r.add_argument("run", nargs="?", default=".", help="the run folder (default: the current folder)")
    r.set_defaults(func=_report)

    c = sub.add_parser("recipes", help="list the shipped recipes, print one's path, or copy one to edit")
    c.add_argument("action", nargs="?", choices=("ls", "path", "cp"), default="ls")
    c.add_argument("name", nargs="?", help="recipe name, e.g. nano/sft (path, cp)")
    c.add_argument("dest", nargs="?", help="where cp writes the copy")
    c.set_defaults(func=_recipes)


def _speedrun(args: argparse.Namespace) -> int:
    name = args.name or ("nano" if args.seed == 0 else f"nano-seed{args.seed}")
    report = speedrun(Path(args.out) / name, recipe=args.recipe, quick=args.quick, fresh=args.fresh, seed=args.seed)
    print(f"[speedrun] report: {report} and {report.with_suffix('.html')}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from medmo.speedrun_report import write_report

    paths = write_report(args.run)
    print(f"report: {paths['report_md']} and {paths['report_html']}")
    return 0


def _recipes(args: argparse.Namespace) -> int:
    from medmo import recipes

    if args.action == "ls":
        print("\n".join(recipes.names()))
        return 0
    if not args.name:
        raise ValueError(f"`medmo recipes {args.action}` needs a recipe name (see `medmo recipes`)")
    source = recipes.path(args.name)
    if args.action == "path":
        print(source)
        return 0
    dest = Path(args.dest or source.name)
    dest = dest / source.name if dest.is_dir() else dest
    shutil.copyfile(source, dest)
    print(dest)
    return 0
