"""A report as a list of blocks, rendered to Markdown and to a self-contained HTML page from the same blocks.

Tables stay data until they are rendered (:class:`Grid`), so the page's ``<table>`` elements are built
from the cells, never re-parsed from Markdown text.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

CSS = ("body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;margin:8px 0}"
       "td,th{border:1px solid #ccc;padding:3px 8px}td.n,th.n{text-align:right}caption{font-weight:bold;"
       "text-align:left}pre{background:#f6f6f6;padding:8px;overflow-x:auto}")  # fmt: skip


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str


@dataclass
class Grid:
    """A table: a header row, body rows of cell texts, and notes under it.

    Attributes:
        title: caption (Markdown: a ``###`` line above the table).
        header: column names.
        rows: cell texts, one list per row, as long as ``header``.
        numeric_from: columns from this index on are numbers (right-aligned).
        notes: lines shown under the table.
    """

    title: str
    header: list[str]
    rows: list[list[str]]
    numeric_from: int = 1
    notes: list[str] = field(default_factory=list)


@dataclass
class Image:
    path: Path
    alt: str = ""


@dataclass
class Links:
    items: list[tuple[str, str]]  # (text, href)


@dataclass
class Code:
    lines: list[str]


Block = Heading | Text | Grid | Image | Links | Code


def grid_markdown(g: Grid) -> str:
    """One Markdown table with its title and notes."""
    align = [" --- " if i < g.numeric_from else " ---: " for i in range(len(g.header))]
    lines = [f"### {g.title}", ""] if g.title else []
    lines += ["| " + " | ".join(g.header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in g.rows]
    lines += [""] + [f"- {n}" for n in g.notes] if g.notes else []
    return "\n".join(lines) + "\n"


def grid_html(g: Grid) -> str:
    """One HTML ``<table>`` with a caption, header cells and body cells, and its notes as a list."""
    def cells(row: list[str], tag: str) -> str:
        return "".join(f"<{tag}{' class=n' if i >= g.numeric_from else ''}>{html.escape(c)}</{tag}>"
                       for i, c in enumerate(row))  # fmt: skip

    caption = f"<caption>{html.escape(g.title)}</caption>" if g.title else ""
    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in g.rows)
    notes = "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in g.notes) + "</ul>" if g.notes else ""
    return f"<table>{caption}<thead><tr>{cells(g.header, 'th')}</tr></thead><tbody>{body}</tbody></table>{notes}"


def to_markdown(blocks: list[Block], base: Path) -> str:
    """The blocks as Markdown; image and link paths relative to ``base`` (where the file is written)."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Text):
            out += [b.text, ""]
        elif isinstance(b, Grid):
            out += [grid_markdown(b)]
        elif isinstance(b, Image):
            out += [f"![{b.alt}]({_rel(b.path, base)})", ""]
        elif isinstance(b, Links):
            out += [f"- [{text}]({_rel(Path(href), base)})" for text, href in b.items] + [""]
        elif isinstance(b, Code):
            out += ["```", *b.lines, "```", ""]
    return "\n".join(out)


def to_html(blocks: list[Block], base: Path, title: str) -> str:
    """A self-contained page: images inlined as data URLs, links relative to ``base``."""
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Text):
            body.append(f"<p>{html.escape(b.text)}</p>")
        elif isinstance(b, Grid):
            body.append(grid_html(b))
        elif isinstance(b, Image):
            data = base64.b64encode(Path(b.path).read_bytes()).decode()
            body.append(f"<img alt='{html.escape(b.alt)}' style='max-width:100%' src='data:image/png;base64,{data}'>")
        elif isinstance(b, Links):
            body.append("<ul>" + "".join(f"<li><a href='{html.escape(str(_rel(Path(h), base)))}'>{html.escape(t)}</a></li>"
                                         for t, h in b.items) + "</ul>")  # fmt: skip
        elif isinstance(b, Code):
            body.append(f"<pre>{html.escape(chr(10).join(b.lines))}</pre>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")  # fmt: skip


def _rel(path: Path, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return str(path)
