"""The registry: every dataset source, found from the ``SOURCE`` declarations of the loader modules.

A dataset is declared once, at the top of its loader module::

    SOURCE = SourceInfo(name="vqa_rad", tasks=("closed_vqa", "open_vqa"), modality="other",
                        splits=("train", "test"), layout="...", hub_id="flaviagiammarino/vqa-rad",
                        licence="CC0-1.0 (HF card)", aliases=("vqarad",))

(or ``SOURCES = (SourceInfo(...), ...)`` for a module reading several related datasets). The registry
reads the declarations from the module *files* with :mod:`ast`, without importing them, so listing
sources (``medmo data sources``, ``import medmo.data.sources``) loads no loader and none of its
dependencies; a loader module is imported when its source is loaded. Declarations therefore hold
literals only, which :func:`declarations` checks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from medmo.data.sources._base import SourceInfo

PACKAGE_DIR = Path(__file__).resolve().parent
DECLARATION_NAMES = ("SOURCE", "SOURCES")


class DeclarationError(ValueError):
    """A loader module's ``SOURCE`` declaration the registry cannot read."""


def declarations(path: Path) -> list[SourceInfo]:
    """The :class:`SourceInfo` objects declared at the top level of one module file (not imported).

    Raises:
        DeclarationError: a declaration that is not ``SourceInfo(...)`` with literal keyword arguments.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        if node.value is None or not any(isinstance(t, ast.Name) and t.id in DECLARATION_NAMES for t in targets):
            continue
        calls = node.value.elts if isinstance(node.value, (ast.Tuple, ast.List)) else [node.value]
        found += [_info(path, call) for call in calls]
    return found


def _info(path: Path, call: ast.expr) -> SourceInfo:
    where = f"{path.name}:{call.lineno}"
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "SourceInfo"):
        raise DeclarationError(f"{where}: SOURCE must be SourceInfo(...) or a tuple of them")
    if call.args:
        raise DeclarationError(f"{where}: give SourceInfo's fields by keyword (name=..., tasks=...)")
    kw: dict[str, Any] = {}
    for k in call.keywords:
        try:
            kw[str(k.arg)] = ast.literal_eval(k.value)
        except ValueError:
            raise DeclarationError(
                f"{where}: SourceInfo {k.arg}= must be a literal (the registry reads the file, it does not import it)"
            ) from None
    for key in ("tasks", "splits", "aliases"):
        if key in kw:
            kw[key] = tuple(kw[key])
    try:
        return SourceInfo(**kw, module=path.stem)
    except TypeError as e:
        raise DeclarationError(f"{where}: {e}") from None


@lru_cache(maxsize=1)
def registry() -> tuple[dict[str, SourceInfo], dict[str, str]]:
    """``(sources by name, alias -> name)`` from every loader module of this package."""
    sources: dict[str, SourceInfo] = {}
    aliases: dict[str, str] = {}
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        if path.name.startswith("_") or path.stem == "catalog":
            continue
        for info in declarations(path):
            if info.name in sources:
                other = sources[info.name].module
                raise DeclarationError(f"{path.name}: source {info.name!r} is already declared in {other}.py")
            sources[info.name] = info
            aliases.update({a: info.name for a in info.aliases})
    return dict(sorted(sources.items())), aliases


class _Lazy(Mapping):
    """A read-only view of one half of :func:`registry`, read on first use."""

    def __init__(self, index: int):
        self._index = index

    def _table(self) -> dict:
        return registry()[self._index]

    def __getitem__(self, key: str) -> Any:
        return self._table()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._table())})"


SOURCES: Mapping[str, SourceInfo] = _Lazy(0)
ALIASES: Mapping[str, str] = _Lazy(1)
