"""``report.html``: one file with every figure embedded (base64 PNG), so it can be mailed or
moved on its own; each image also links to its PNG file next to it. No external CSS, fonts or
scripts."""

from __future__ import annotations

import base64
import html
from collections.abc import Collection, Sequence
from pathlib import Path

from .section import Section

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em auto;
       max-width: 1320px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em;
margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.95em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:nth-child(4) { text-align: left; } tr.bold td { font-weight: 600; background: #fff7e0; }
table.meta td { text-align: left; } table.meta td:first-child { color: #555; }
figure { margin: 1em 0 1.6em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #444; font-size: 0.92em; margin-top: 0.3em; }
p.skipped { color: #8a5a00; background: #fff4e0; padding: 0.4em 0.7em; border-left: 4px solid #e0a030; }
p.note { color: #333; } nav ul { columns: 2; } code { background: #f3f3f3; padding: 0 0.2em; }
"""


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, bold_rows: Collection[int] = (),
          css_class: str = "") -> str:
    """An HTML table; every cell is escaped; rows whose index is in ``bold_rows`` are highlighted."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    bold = " class='bold'"
    body = "".join(
        f"<tr{bold if i in bold_rows else ''}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for i, row in enumerate(rows))
    cls = f" class='{css_class}'" if css_class else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _anchor(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")


def _image(directory: Path, file: str, alt: str) -> str:
    data = base64.b64encode((directory / file).read_bytes()).decode("ascii")
    return (f"<a href='{html.escape(file)}'><img src='data:image/png;base64,{data}' "
            f"alt='{html.escape(alt)}'></a>")


def render(directory: Path, title: str, meta: Sequence[tuple[str, str]], sections: Sequence[Section]) -> str:
    """The whole page: title, a run-facts table, a table of contents, then every section."""
    facts = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in meta)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<table class='meta'><tbody>{facts}</tbody></table>"]
    toc = "".join(f"<li><a href='#{_anchor(s.title)}'>{html.escape(s.title)}</a>"
                  + (" <i>(not applicable)</i>" if s.skipped else "") + "</li>" for s in sections)
    parts.append(f"<nav><ul>{toc}</ul></nav>")
    for s in sections:
        parts.append(f"<h2 id='{_anchor(s.title)}'>{html.escape(s.title)}</h2>")
        if s.skipped:
            parts.append(f"<p class='skipped'>Skipped: {html.escape(s.skipped)}.</p>")
            continue
        if s.intro:
            parts.append(f"<p>{html.escape(s.intro)}</p>")
        parts.append(s.html)
        for f in s.figures:
            parts.append(f"<figure>{_image(directory, f.file, f.caption)}"
                         f"<figcaption>{html.escape(f.caption)} (<a href='{html.escape(f.file)}'>"
                         f"{html.escape(f.file)}</a>)</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
