"""Report pages of a run: one Markdown page and one self-contained HTML page.

:func:`write_report_page` writes, by default into ``RESULTS_FOLDER/report``:

* ``report.md``, with the settings, the tables of totals, passes and
  layers, every figure that the run's data allows (PNG files in
  ``figures/`` beside it) and the model's limitations;
* ``report.html``, the same content in one file with the figures embedded
  as base64 PNG, so it can be mailed or attached as it is.

Both pages are built from one list of blocks (headings, paragraphs,
tables, figures), so they always show the same numbers. Every file is
written atomically.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from procrustes_sim.plots import (CYCLE_PARTS, PNG_DPI, PlotItem, draw, drawn_components,
                                  energy_unit, figure_bytes)
from procrustes_sim.results import (PASSES, Results, load_results, output_folder,
                                    prepare_folder, write_atomic)

MARKDOWN_NAME = "report.md"
HTML_NAME = "report.html"
FIGURE_FOLDER = "figures"

# Settings shown in the run table: (summary.json key, label).
SETTINGS = (
    ("workload", "workload"),
    ("arch", "architecture"),
    ("energy_table", "energy table"),
    ("dataflow", "dataflow"),
    ("layout", "layout"),
    ("balancer", "balancer"),
    ("skip_policy", "skipped operands"),
    ("batch", "batch"),
    ("clock_ghz", "clock (GHz)"),
    ("version", "procrustes-sim version"),
)


@dataclass
class Block:
    """One element of a page: a heading, paragraph, note, list, table or figure.

    *kind* is one of "h1", "h2", "p", "note", "list", "table", "figure".
    A table has *header* and *rows* of text, with every column after the
    first aligned right when *numeric*; a figure has its title in *text*,
    its *caption*, *png* bytes and file *stem*.
    """

    kind: str
    text: str = ""
    items: tuple = ()
    header: tuple = ()
    rows: tuple = ()
    numeric: bool = True
    caption: str = ""
    png: bytes = b""
    stem: str = ""


def write_report_page(source, out: str | Path | None = None, *,
                      trace=None) -> tuple[Path, Path]:
    """Write report.md, report.html and the figure PNGs; return the two page paths.

    *source* is a results folder, a Report or Results. *out* defaults to
    the ``report`` folder inside the results folder. *trace* is the trace
    file for the density figure when summary.json does not name one that
    exists. Figures whose data the run did not record are listed as not
    drawn, with the reason.
    """
    results = load_results(source)
    folder = output_folder(results, out, "report")

    skipped: list = []
    items = draw(results, "all", trace=trace, skipped=skipped)
    pngs = {item.stem: figure_bytes(item.figure, "png", PNG_DPI) for item in items}
    blocks = build_blocks(results, items, pngs, skipped)

    prepare_folder(folder)
    figures = prepare_folder(folder / FIGURE_FOLDER)
    for stem, data in pngs.items():
        write_atomic(figures / f"{stem}.png", data)
    markdown = write_atomic(folder / MARKDOWN_NAME, render_markdown(blocks).encode("utf-8"))
    page = write_atomic(folder / HTML_NAME, render_html(blocks, results).encode("utf-8"))
    return markdown, page


# Content ------------------------------------------------------------------------


def build_blocks(results: Results, items: list[PlotItem], pngs: dict,
                 skipped: list) -> list[Block]:
    """Build the page content: settings, tables, figures, figures not drawn, limitations."""
    summary = results.summary
    blocks = [Block("h1", f"procrustes-sim report: {results.workload}"),
              Block("p", results.context())]
    if results.synthetic:
        blocks.append(Block("note", "Synthetic trace: the masks were drawn at random, not "
                                    "recorded in training, so these figures show the model's "
                                    "behaviour and not a measured network."))

    blocks.append(Block("h2", "Run"))
    blocks.append(_settings_table(results))

    count = results.iteration_count
    per = f"mean per iteration over {count} iterations" if count > 1 else "per iteration"
    blocks.append(Block("h2", "Totals"))
    blocks.append(Block("p", f"Whole network, all passes, {per}. An iteration is one "
                             f"minibatch of {summary.get('batch', 'N')} samples. Ratios are "
                             "dense over sparse, so above 1 the sparse run is better."))
    blocks.append(_totals_table(results))
    blocks.append(Block("h2", "Per pass"))
    blocks.append(Block("p", f"Whole network, {per}."))
    blocks.append(_pass_table(results))
    blocks.append(Block("h2", "Per layer"))
    blocks.append(Block("p", f"Sum over FW, BW and WU, {per}. Utilization is useful "
                             "cycles over sparse cycles."))
    blocks.append(_layer_table(results))

    blocks.append(Block("h2", "Figures"))
    for item in items:
        title = item.figure.get_suptitle().split("\n")[0]
        blocks.append(Block("figure", title, caption=item.caption, png=pngs[item.stem],
                            stem=item.stem))
    if skipped:
        blocks.append(Block("h2", "Figures not drawn"))
        blocks.append(Block("list", items=tuple(f"{kind}: {reason}" for kind, reason in skipped)))

    limitations = summary.get("limitations") or []
    if limitations:
        blocks.append(Block("h2", "What the model leaves out"))
        blocks.append(Block("list", items=tuple(str(line) for line in limitations)))
    return blocks


def _settings_table(results: Results) -> Block:
    summary = results.summary
    rows = [(label, str(summary[key])) for key, label in SETTINGS if key in summary]
    iterations = ", ".join(str(i) for i in results.iterations)
    count = len(results.iterations)
    rows.append(("replayed iterations", f"{count} (iteration{'s' if count > 1 else ''} "
                                        f"{iterations})"))
    trace = summary.get("trace", {})
    if trace.get("description"):
        rows.append(("trace", str(trace["description"])))
    if trace.get("path"):
        rows.append(("trace file", str(trace["path"])))
    return Block("table", header=("setting", "value"), rows=tuple(rows), numeric=False)


def _number(value: float) -> str:
    return f"{value:,.0f}"


def _ratio_text(numerator: float, denominator: float) -> str:
    # A component that one run does not spend energy on has no meaningful ratio.
    if denominator <= 0 or numerator <= 0:
        return "n/a"
    return f"{numerator / denominator:.2f}×"


def _totals_table(results: Results) -> Block:
    components = drawn_components(results)
    energy_columns = [f"{run}_energy_{name}_pj" for run in ("sparse", "dense")
                      for name in components]
    cycle_columns = [column for column, _, _ in CYCLE_PARTS]
    total = results.total(["sparse_cycles", "dense_cycles", "sparse_energy_pj",
                           "dense_energy_pj", *cycle_columns, *energy_columns])
    unit, size = energy_unit(max(total["sparse_energy_pj"], total["dense_energy_pj"]))

    rows = [("cycles", _number(total["sparse_cycles"]), _number(total["dense_cycles"]),
             _ratio_text(total["dense_cycles"], total["sparse_cycles"])),
            (f"energy ({unit})", f"{total['sparse_energy_pj'] / size:,.3f}",
             f"{total['dense_energy_pj'] / size:,.3f}",
             _ratio_text(total["dense_energy_pj"], total["sparse_energy_pj"]))]
    for column, label, _ in CYCLE_PARTS:
        share = total[column] / total["sparse_cycles"] if total["sparse_cycles"] else 0.0
        rows.append((f"{label} cycles", f"{_number(total[column])} ({share:.1%})", "", ""))
    for name in components:
        sparse = total[f"sparse_energy_{name}_pj"]
        dense = total[f"dense_energy_{name}_pj"]
        rows.append((f"{name} energy ({unit})", f"{sparse / size:,.3f}", f"{dense / size:,.3f}",
                     _ratio_text(dense, sparse)))
    return Block("table", header=("quantity", "sparse run", "dense baseline", "dense / sparse"),
                 rows=tuple(rows))


def _pass_table(results: Results) -> Block:
    columns = ["sparse_cycles", "dense_cycles", "sparse_energy_pj", "dense_energy_pj"]
    totals = {pass_: results.total(columns, pass_) for pass_ in results.passes}
    largest = max(max(t["sparse_energy_pj"], t["dense_energy_pj"]) for t in totals.values())
    unit, size = energy_unit(largest)
    rows = []
    for pass_ in PASSES:
        if pass_ not in totals:
            continue
        t = totals[pass_]
        rows.append((pass_, _number(t["sparse_cycles"]), _number(t["dense_cycles"]),
                     _ratio_text(t["dense_cycles"], t["sparse_cycles"]),
                     f"{t['sparse_energy_pj'] / size:,.3f}", f"{t['dense_energy_pj'] / size:,.3f}",
                     _ratio_text(t["dense_energy_pj"], t["sparse_energy_pj"])))
    header = ("pass", "sparse cycles", "dense cycles", "speedup", f"sparse energy ({unit})",
              f"dense energy ({unit})", "energy ratio")
    return Block("table", header=header, rows=tuple(rows))


def _layer_table(results: Results) -> Block:
    columns = ["sparse_cycles", "dense_cycles", "sparse_energy_pj", "dense_energy_pj",
               "useful_cycles"]
    per_layer = results.per_layer(columns)
    largest = max(max(r["sparse_energy_pj"], r["dense_energy_pj"]) for r in per_layer.values())
    unit, size = energy_unit(largest)
    rows = []
    for layer, r in per_layer.items():
        utilization = r["useful_cycles"] / r["sparse_cycles"] if r["sparse_cycles"] else 0.0
        rows.append((layer, _number(r["sparse_cycles"]), _number(r["dense_cycles"]),
                     _ratio_text(r["dense_cycles"], r["sparse_cycles"]),
                     f"{r['sparse_energy_pj'] / size:,.3f}", f"{r['dense_energy_pj'] / size:,.3f}",
                     _ratio_text(r["dense_energy_pj"], r["sparse_energy_pj"]),
                     f"{utilization:.1%}"))
    header = ("layer", "sparse cycles", "dense cycles", "speedup", f"sparse energy ({unit})",
              f"dense energy ({unit})", "energy ratio", "utilization")
    return Block("table", header=header, rows=tuple(rows))


# Markdown -------------------------------------------------------------------------


def _markdown_cell(text: str) -> str:
    # CommonMark lets a backslash escape any punctuation. These characters would
    # otherwise end a table cell, start emphasis, code, a link or raw HTML.
    for character in ("\\", "|", "*", "_", "`", "<", ">", "[", "]"):
        text = text.replace(character, "\\" + character)
    return text.replace("\n", " ")


def render_markdown(blocks: list[Block]) -> str:
    """Render the page as GitHub-flavoured Markdown; figures link to figures/<stem>.png."""
    lines = []
    for block in blocks:
        if block.kind == "h1":
            lines += [f"# {block.text}", ""]
        elif block.kind == "h2":
            lines += [f"## {block.text}", ""]
        elif block.kind == "p":
            lines += [_markdown_cell(block.text), ""]
        elif block.kind == "note":
            lines += [f"> **{_markdown_cell(block.text)}**", ""]
        elif block.kind == "list":
            lines += [f"- {_markdown_cell(item)}" for item in block.items] + [""]
        elif block.kind == "table":
            lines.append("| " + " | ".join(_markdown_cell(h) for h in block.header) + " |")
            # The first column is text; in numeric tables the others align right.
            rule = "---:|" if block.numeric else "---|"
            lines.append("|---|" + rule * (len(block.header) - 1))
            for row in block.rows:
                lines.append("| " + " | ".join(_markdown_cell(cell) for cell in row) + " |")
            lines.append("")
        elif block.kind == "figure":
            lines += [f"### {_markdown_cell(block.text)}", "",
                      f"![{_markdown_cell(block.text)}]({FIGURE_FOLDER}/{block.stem}.png)", "",
                      f"*{_markdown_cell(block.caption)}*", ""]
        else:
            raise AssertionError(block.kind)
    return "\n".join(lines).rstrip("\n") + "\n"


# HTML -------------------------------------------------------------------------------

_STYLE_SHEET = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 72rem;
       margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; }
th { text-align: left; background: #f4f4f4; }
td { text-align: left; }
table.numeric td { text-align: right; font-variant-numeric: tabular-nums; }
table.numeric td:first-child { text-align: left; }
.note { border-left: 4px solid #D55E00; background: #fdf1e9; padding: 0.5rem 0.8rem; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.9rem; color: #444; }
"""


def render_html(blocks: list[Block], results: Results) -> str:
    """Render the page as one HTML document with the figures embedded as base64 PNG."""
    escape = html.escape
    body = []
    for block in blocks:
        if block.kind in ("h1", "h2", "p"):
            body.append(f"<{block.kind}>{escape(block.text)}</{block.kind}>")
        elif block.kind == "note":
            body.append(f'<p class="note"><strong>{escape(block.text)}</strong></p>')
        elif block.kind == "list":
            entries = "".join(f"<li>{escape(item)}</li>" for item in block.items)
            body.append(f"<ul>{entries}</ul>")
        elif block.kind == "table":
            head = "".join(f"<th>{escape(h)}</th>" for h in block.header)
            rows = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row)
                           + "</tr>" for row in block.rows)
            kind = "numeric" if block.numeric else "text"
            body.append(f'<table class="{kind}"><thead><tr>{head}</tr></thead>'
                        f"<tbody>{rows}</tbody></table>")
        elif block.kind == "figure":
            data = base64.b64encode(block.png).decode("ascii")
            body.append(f'<figure id="{escape(block.stem)}"><h3>{escape(block.text)}</h3>'
                        f'<img alt="{escape(block.text)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{escape(block.caption)}</figcaption></figure>")
        else:
            raise AssertionError(block.kind)
    title = escape(f"procrustes-sim report: {results.workload}")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{title}</title>\n<style>{_STYLE_SHEET}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
