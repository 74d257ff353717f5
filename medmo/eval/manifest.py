"""The run manifest every results file carries, and ``medmo eval diff A.json B.json``.

The manifest names everything that can move a score: prompt and parser versions, scoring preset and
prompt preset, judge, seed, the backend's pixel budget, chat-template hash and checkpoint fingerprint, and
the versions of the packages in the path. :func:`diff` compares two results files: the settings that differ
(manifest and per-benchmark settings) and how each shared benchmark's headline metrics moved, with both
runs' confidence intervals so a move inside them reads as noise.
"""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

from medmo import __version__
from medmo.answers import PARSER_VERSION
from medmo.prompts import PROMPT_VERSION
from medmo.records import RECORD_VERSION

PACKAGES = ("torch", "transformers", "numpy", "accelerate", "peft", "trl", "vllm", "pycocoevalcap")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that take part in generation and scoring."""
    out = {"medmo": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def manifest(backend_info: dict[str, Any], *, preset: str, prompts: str, judge: dict | None, seed: int,
             shard: str | None = None) -> dict[str, Any]:
    """Everything a reader needs to reproduce (or distrust) a results file."""
    return {
        "preset": preset,
        "prompts": prompts,
        "prompt_version": PROMPT_VERSION,
        "parser_version": PARSER_VERSION,
        "record_version": RECORD_VERSION,
        "judge": judge,
        "seed": seed,
        "shard": shard,
        "pixel_budget": backend_info.get("pixel_budget"),
        "chat_template_sha1": backend_info.get("chat_template_sha1"),
        "checkpoint_fingerprint": backend_info.get("fingerprint"),
        "packages": package_versions(),
    }


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Settings that differ between two results and the per-benchmark moves of their headline metrics."""
    ma, mb = _flat({"model": a.get("model"), **(a.get("manifest") or {})}), _flat(
        {"model": b.get("model"), **(b.get("manifest") or {})})
    settings = {k: [ma.get(k), mb.get(k)] for k in sorted(set(ma) | set(mb)) if ma.get(k) != mb.get(k)}
    benches: dict[str, Any] = {}
    ba, bb = a.get("benchmarks", {}), b.get("benchmarks", {})
    for name in sorted(set(ba) & set(bb)):
        ea, eb = ba[name], bb[name]
        sa, sb = _flat(ea.get("benchmark") or {}), _flat(eb.get("benchmark") or {})
        changed = {k: [sa.get(k), sb.get(k)] for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)}
        moves = {}
        for m in ea.get("headline") or []:
            va, vb = (ea.get("metrics") or {}).get(m), (eb.get("metrics") or {}).get(m)
            if va is None or vb is None:
                continue
            moves[m] = {"a": va, "b": vb, "delta": vb - va, "ci_a": (ea.get("ci") or {}).get(m),
                        "ci_b": (eb.get("ci") or {}).get(m)}
        benches[name] = {"settings": changed, "metrics": moves, "n": [ea.get("n"), eb.get("n")]}
    return {"settings": settings, "benchmarks": benches, "only_in_a": sorted(set(ba) - set(bb)),
            "only_in_b": sorted(set(bb) - set(ba))}


def diff_markdown(d: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    """The diff as text for the terminal."""
    lines = [f"settings that differ ({name_a} -> {name_b}):"]
    lines += [f"  {k}: {va!r} -> {vb!r}" for k, (va, vb) in d["settings"].items()] or ["  (none)"]
    lines.append("benchmarks:")
    for name, e in d["benchmarks"].items():
        for m, v in e["metrics"].items():
            ci = ""
            if v["ci_a"] and v["ci_b"]:
                ci = f"  (95% CI {100 * v['ci_a'][0]:.1f}-{100 * v['ci_a'][1]:.1f} / " \
                     f"{100 * v['ci_b'][0]:.1f}-{100 * v['ci_b'][1]:.1f})"
            lines.append(f"  {name} {m}: {100 * v['a']:.1f} -> {100 * v['b']:.1f} ({100 * v['delta']:+.1f}){ci}")
        for k, (va, vb) in e["settings"].items():
            lines.append(f"    setting {k}: {va!r} -> {vb!r}")
    for side, key in ((name_a, "only_in_a"), (name_b, "only_in_b")):
        if d[key]:
            lines.append(f"only in {side}: {', '.join(d[key])}")
    return "\n".join(lines) + "\n"
