"""The side-by-side page as HTML: self-contained (inline CSS, no script, nothing fetched),
and byte for byte the same on every run, so a test can compare it with the committed file."""

import html
from collections.abc import Sequence

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from docs.extract import ConcernCode, Side, Snippet
from docs.wording import COUNTING, INTRO, READING, TITLE, lines

PYGMENTS_STYLE = "default"
PAGE_CSS = """
:root {
  color-scheme: light;
  --text: #1f2328; --muted: #59636e; --rule: #d1d9e0;
  --fastapi: #009485; --flask: #3b5fa0; --shared: #9a6700;
}
* { box-sizing: border-box; }
body {
  margin: 0; color: var(--text); background: #fff;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans",
    sans-serif;
}
main { max-width: 1720px; margin: 0 auto; padding: 1.25rem 1.5rem 4rem; }
/* The summary beside the introduction on a wide screen, so the first concern shows too. */
.top { display: grid; grid-template-columns: minmax(0, 1fr) auto; gap: 1rem 3rem;
  align-items: start; }
@media (max-width: 1100px) { .top { grid-template-columns: minmax(0, 1fr); } }
h1 { font-size: 1.8rem; margin: 0 0 .4rem; }
.intro { max-width: 75ch; margin: .3rem 0 .6rem; }
code, pre { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas,
  monospace; }
p code, td code, summary code { font-size: .88em; background: #eff2f5; padding: .05em .3em;
  border-radius: 4px; }
table.summary { border-collapse: collapse; font-size: .9rem; line-height: 1.35; }
table.summary th, table.summary td { padding: .2rem .8rem; border-bottom: 1px solid var(--rule);
  text-align: left; }
table.summary .n { text-align: right; font-variant-numeric: tabular-nums; }
table.summary tfoot td { font-weight: 600; border-bottom: 0; }
section.concern { border-top: 2px solid var(--rule); margin-top: 1.5rem; padding-top: .75rem; }
section.concern h2 { font-size: 1.4rem; margin: 0 0 .2rem; }
section.concern h2 a { color: inherit; text-decoration: none; }
.notes { max-width: 110ch; margin: .2rem 0 .9rem; }
.sides { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 1.25rem;
  align-items: start; }
@media (max-width: 960px) { .sides { grid-template-columns: minmax(0, 1fr); } }
.side { border-top: 4px solid var(--rule); }
.side.fastapi { border-top-color: var(--fastapi); }
.side.flask { border-top-color: var(--flask); }
.side.shared { border-top-color: var(--shared); padding-top: .5rem; }
.side-head { display: flex; align-items: baseline; gap: .75rem; padding: .3rem 0 .4rem; }
.side-head h3 { margin: 0; font-size: 1.1rem; }
.fastapi .side-head h3 { color: var(--fastapi); }
.flask .side-head h3 { color: var(--flask); }
.count { color: var(--muted); font-size: .9rem; }
figure.snippet { margin: 0 0 .8rem; }
figcaption { color: var(--muted); font-size: .8rem; margin-bottom: .15rem; }
.highlight { border: 1px solid var(--rule); border-radius: 6px; }
.highlight pre { margin: 0; padding: .5rem .6rem; overflow-x: auto; font-size: 12.5px;
  line-height: 1.45; }
.highlight span.linenos { color: #8c959f; padding: 0 .8rem 0 0; user-select: none; }
details.shared { margin-top: .4rem; }
details.shared > summary { cursor: pointer; color: var(--shared); font-weight: 600;
  padding: .3rem 0; }
"""


def html_page(concerns: Sequence[ConcernCode]) -> str:
    about = [
        '<div class="about">',
        f"<h1>{html.escape(TITLE)}</h1>",
        f'<p class="intro">{inline(INTRO)}</p>',
        f'<p class="intro">{inline(COUNTING)}</p>',
        f'<p class="intro">{inline(READING)}</p>',
        "</div>",
    ]
    body = [
        "<main>",
        '<header class="top">',
        *about,
        summary_table(concerns),
        "</header>",
        *(section(concern) for concern in concerns),
        "</main>",
    ]
    return document("\n".join(body))


def document(body: str) -> str:
    # Pygments' rules first, so the page's own (line numbers, spacing) take precedence.
    css = HtmlFormatter(style=PYGMENTS_STYLE).get_style_defs(".highlight") + PAGE_CSS
    head = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>authtwin: {html.escape(TITLE)}</title>",
        f"<style>\n{css}</style>",
        "</head>",
    ]
    return "\n".join([*head, "<body>", body, "</body>", "</html>", ""])


def summary_table(concerns: Sequence[ConcernCode]) -> str:
    numbers = ("FastAPI lines", "Flask lines", "shared lines")
    head = "".join(f'<th class="n">{name}</th>' for name in numbers)
    rows = [
        summary_row(
            f'<a href="#{code.concern.slug}">{html.escape(code.concern.title)}</a>',
            code.line_counts,
        )
        for code in concerns
    ]
    totals = [sum(column) for column in zip(*(code.line_counts for code in concerns), strict=True)]
    return "\n".join(
        [
            '<table class="summary">',
            f"<thead><tr><th>concern</th>{head}</tr></thead>",
            "<tbody>",
            *rows,
            "</tbody>",
            f"<tfoot>{summary_row('all concerns', totals)}</tfoot>",
            "</table>",
        ]
    )


def summary_row(first: str, counts: Sequence[int]) -> str:
    numbers = "".join(f'<td class="n">{count}</td>' for count in counts)
    return f"<tr><td>{first}</td>{numbers}</tr>"


def section(code: ConcernCode) -> str:
    concern = code.concern
    parts = [
        f'<section class="concern" id="{concern.slug}">',
        f'<h2><a href="#{concern.slug}">{html.escape(concern.title)}</a></h2>',
        f'<p class="notes">{inline(concern.notes)}</p>',
        '<div class="sides">',
        side("fastapi", "FastAPI", code.fastapi),
        side("flask", "Flask", code.flask),
        "</div>",
    ]
    if code.shared.snippets:
        parts.append(shared_core(code.shared))
    return "\n".join([*parts, "</section>"])


def side(kind: str, label: str, code: Side) -> str:
    count = f'<span class="count">{lines(code.lines)}</span>'
    head = f'<div class="side-head"><h3>{label}</h3>{count}</div>'
    return "\n".join([f'<div class="side {kind}">', head, *map(figure, code.snippets), "</div>"])


def shared_core(code: Side) -> str:
    """Folded: it is the same for both twins, and read after them, if at all."""
    summary = f"<summary>Shared core: {lines(code.lines)}, in {paths(code)}</summary>"
    figures = [figure(snippet) for snippet in code.snippets]
    return "\n".join(
        [
            '<details class="shared">',
            summary,
            '<div class="side shared">',
            *figures,
            "</div>",
            "</details>",
        ]
    )


def figure(snippet: Snippet) -> str:
    # Line numbers are the file's own, so a reader can find each line in the source.
    formatter = HtmlFormatter(
        style=PYGMENTS_STYLE, linenos="inline", linenostart=snippet.first, wrapcode=True
    )
    code = highlight(snippet.code, PythonLexer(), formatter)
    caption = f"<figcaption><code>{html.escape(snippet.location)}</code></figcaption>"
    return f'<figure class="snippet">{caption}\n{code}</figure>'


def paths(code: Side) -> str:
    return ", ".join(f"<code>{html.escape(path)}</code>" for path in code.paths)


def inline(text: str) -> str:
    """``text`` as HTML, its `backticked` spans as ``<code>``."""
    pieces = text.split("`")
    return "".join(
        f"<code>{html.escape(piece)}</code>" if index % 2 else html.escape(piece)
        for index, piece in enumerate(pieces)
    )
