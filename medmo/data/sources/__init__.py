"""Dataset sources: one small loader per public dataset, all yielding :class:`~medmo.records.Sample`.

Each loader reads a dataset's *published* files from a local folder (the layout in :data:`SOURCES`), or,
where the dataset is on the Hugging Face hub, its hub id through ``datasets.load_dataset``.
A dataset is declared once, by ``SOURCE = SourceInfo(...)`` at the top of its loader module; the
registry (:mod:`medmo.data.sources.catalog`) reads those declarations without importing the modules, and a
loader module is imported only when it is used, so ``import medmo.data.sources`` costs nothing heavy.
Loaders build records with :meth:`Context.sample`, which sets each record's ``source`` and ``id``.

Example::

    from medmo.data.sources import load_source, SourceStats
    stats = SourceStats()
    for s in load_source("vqa_rad", "/data/data_RAD", split="test", stats=stats):
        ...
    print(stats.summary())
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from medmo.data.sources._base import Context, LayoutError, Problem, SourceInfo, SourceStats, canonical_split
from medmo.data.sources.catalog import ALIASES, SOURCES
from medmo.records import Sample

__all__ = [
    "SOURCES",
    "SourceInfo",
    "SourceStats",
    "Problem",
    "LayoutError",
    "load_source",
    "describe",
    "get_source",
]


def get_source(name: str) -> SourceInfo:
    """The registered :class:`SourceInfo` for ``name`` (aliases accepted).

    Raises:
        KeyError: unknown name; the message lists the registered names and the closest matches.
    """
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key in SOURCES:
        return SOURCES[key]
    close = difflib.get_close_matches(key, list(SOURCES) + list(ALIASES), n=5, cutoff=0.5)
    close = list(dict.fromkeys(ALIASES.get(c, c) for c in close))[:3]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise KeyError(f"unknown dataset source {name!r}.{hint} Registered sources: {', '.join(sorted(SOURCES))}")


def load_source(
    name: str,
    root_or_hub_id: str | Path,
    split: str | None = None,
    *,
    strict: bool = False,
    stats: SourceStats | None = None,
    on_error: Callable[[Problem], None] | None = None,
    check_images: bool = True,
    read_sizes: bool = True,
    image_dir: str | Path | None = None,
    shard: tuple[int, int] = (0, 1),
    with_positions: bool = False,
    **kw: Any,
) -> Iterator[Any]:
    """Stream a dataset as :class:`Sample` records.

    Args:
        name: registered source name (see :func:`describe`), e.g. ``"slake"``.
        root_or_hub_id: the dataset's local folder (published layout) or, for sources with a hub
            loader, its Hugging Face dataset id.
        split: ``train`` / ``validation`` / ``test`` (``val``, ``dev``, ``validate`` are accepted), or None
            (or ``"all"``) for every record, each keeping its own split.
        strict: raise :class:`~medmo.records.RecordError` (file and line) on the first bad record.
            Default: skip it, count it in ``stats`` and call ``on_error``.
        stats: filled with counts and the problems found.
        on_error: called with each :class:`Problem`.
        check_images: treat a missing image file as a bad record.
        read_sizes: read image width/height from file headers.
        image_dir: where images embedded in hub / parquet rows are written
            (default ``~/.cache/medmo/images/<name>``).
        shard: ``(k, n)``: convert only every ``n``-th row of the dataset, starting at row ``k``
            (:attr:`Context.shard`); ``n`` processes with ``k = 0 .. n-1`` together read every record once.
        with_positions: yield ``(position, sample)`` pairs, ``position`` being the record's place in an
            unsharded run (:attr:`Context.position`), so sharded streams merge back into that order.
        **kw: loader options (e.g. ``lang="en"`` for SLAKE, ``options=5`` for MedQA); see each module.

    Raises:
        KeyError: unknown source name.
        FileNotFoundError: the path does not exist and is not a hub id this source can load.
    """
    info = get_source(name)
    ctx = Context(
        source=info.name,
        strict=strict,
        stats=stats if stats is not None else SourceStats(),
        on_error=on_error,
        check_images=check_images,
        read_sizes=read_sizes,
        image_dir=Path(image_dir) if image_dir is not None else Path.home() / ".cache" / "medmo" / "images" / info.name,
        shard=_check_shard(shard),
    )
    if split is not None and split.strip().lower() == "all":
        split = None
    if split is not None:  # a source's own name wins (MMMU / MMLU "dev" is a few-shot split, not validation)
        raw = split.strip().lower()
        split = raw if raw in info.splits else canonical_split(raw)
    if split is not None and info.splits and split not in info.splits:
        raise ValueError(f"{info.name} has splits {', '.join(info.splits)}; got split={split!r}")
    module = info.load_module()
    root = Path(root_or_hub_id).expanduser()
    if root.exists():
        gen = _call(info, module.load, root, split, ctx, kw)
    elif hasattr(module, "load_hub") and "/" in str(root_or_hub_id) and not str(root_or_hub_id).startswith((".", "/")):
        gen = _call(info, module.load_hub, str(root_or_hub_id), split, ctx, kw)
    else:
        hub = f" or the hub id {info.hub_id!r}" if hasattr(module, "load_hub") and info.hub_id else ""
        raise FileNotFoundError(
            f"{info.name}: {root_or_hub_id} does not exist. Pass the dataset folder{hub}. "
            f"Expected layout:\n{info.layout}"
        )
    checked = _checked(info, gen, split)
    return ((ctx.position, s) for s in checked) if with_positions else checked


def _check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    k, n = (int(v) for v in shard)
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard!r}")
    return k, n


def _call(info: SourceInfo, fn: Callable[..., Iterator[Sample]], where: Any, split: str | None, ctx: Context,
          kw: dict[str, Any]) -> Iterator[Sample]:  # fmt: skip
    """Call a loader; an option it does not take is an error that lists the options it does take."""
    params = inspect.signature(fn).parameters
    unknown = sorted(set(kw) - {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY})
    if unknown:
        takes = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]
        raise TypeError(f"{info.name}: unknown option(s) {unknown}; this loader takes {takes or 'no options'}")
    return fn(where, split, ctx, **kw)


def _checked(info: SourceInfo, gen: Iterator[Sample], split: str | None) -> Iterator[Sample]:
    try:
        for s in gen:
            if split is None or s.split == split:
                yield s
    except LayoutError as e:
        raise LayoutError(f"{info.name}: {e}. Expected layout:\n{info.layout}") from None


def describe() -> list[dict[str, Any]]:
    """One dict per registered source (name, tasks, modality, splits, layout, hub_id, licence), sorted by name."""
    return [SOURCES[n].to_dict() for n in sorted(SOURCES)]
