"""Tests of the report pages: report.md, the self-contained report.html and their figures."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
from collections import defaultdict

import pytest

from procrustes_sim.cli import main
from procrustes_sim.errors import InputError
from procrustes_sim.report import RESULTS_FORMAT
from procrustes_sim.reportpage import Block, render_html, render_markdown, write_report_page
from procrustes_sim.results import REQUIRED_COLUMNS, Results

FIGURE_STEMS = ("energy", "energy-pass", "speedup", "cycles", "imbalance-conv1-FW-it0",
                "density")


@pytest.fixture(scope="module")
def report(tiny):
    """A simulation of the tiny trace (batch 4, 2 iterations) recording conv1 FW per PE."""
    from procrustes_sim.simulation import simulate

    return simulate(tiny.trace, workload=str(tiny.csv), record_pe=["conv1:FW"])


@pytest.fixture(scope="module")
def folder(report, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "results"
    report.write(out)
    return out


@pytest.fixture(scope="module")
def pages(folder):
    """(report.md path, report.html path) written into the default folder."""
    return write_report_page(folder)


@pytest.fixture(scope="module")
def markdown(pages):
    return pages[0].read_text()


@pytest.fixture(scope="module")
def page(pages):
    return pages[1].read_text()


@pytest.fixture(scope="module")
def rows(folder):
    with (folder / "layers.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def table_row(markdown: str, first_cell: str) -> list[str]:
    """The cells of the first Markdown table row whose first cell is *first_cell*."""
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row {first_cell!r}")


# Files ------------------------------------------------------------------------


def test_pages_in_default_folder(folder, pages):
    assert pages == (folder / "report" / "report.md", folder / "report" / "report.html")


@pytest.mark.parametrize("stem", FIGURE_STEMS)
def test_figure_png_written(folder, pages, stem):
    path = folder / "report" / "figures" / f"{stem}.png"
    assert path.read_bytes().startswith(b"\x89PNG")


def test_pages_leave_no_temporary(folder, pages):
    hidden = [p for p in (folder / "report").rglob(".*")]
    assert hidden == []


def test_out_folder_option(folder, tmp_path):
    markdown_path, _ = write_report_page(folder, tmp_path / "elsewhere")
    assert markdown_path == tmp_path / "elsewhere" / "report.md"


# Markdown -----------------------------------------------------------------------


@pytest.mark.parametrize("heading", ["## Run", "## Totals", "## Per pass", "## Per layer",
                                     "## Figures", "## What the model leaves out"])
def test_markdown_has_section(markdown, heading):
    assert f"\n{heading}\n" in markdown


def test_markdown_links_existing_figures(markdown, pages):
    links = re.findall(r"\]\((figures/[^)]+)\)", markdown)
    assert sorted(links) == sorted(f"figures/{stem}.png" for stem in FIGURE_STEMS)
    for link in links:
        assert (pages[0].parent / link).is_file(), link


def test_markdown_says_synthetic(markdown):
    assert "Synthetic trace" in markdown


def test_markdown_says_mean(markdown):
    assert "mean per iteration over 2 iterations" in markdown


def test_layer_table_has_every_layer(markdown, tiny):
    for layer in tiny.layer_names:
        assert table_row(markdown, layer)[0] == layer


def test_layer_cycles_match_csv(markdown, rows):
    sums = defaultdict(float)
    for row in rows:
        sums[row["layer"]] += float(row["sparse_cycles"])
    for layer, total in sums.items():
        assert table_row(markdown, layer)[1] == f"{total / 2:,.0f}", layer


def test_pass_speedup_matches_summary(markdown, folder):
    summary = json.loads((folder / "summary.json").read_text())
    for pass_, figures in summary["per_pass"].items():
        assert table_row(markdown, pass_)[3] == f"{figures['speedup']:.2f}×", pass_


def test_total_cycles_match_summary(markdown, folder):
    summary = json.loads((folder / "summary.json").read_text())
    cells = table_row(markdown, "cycles")
    assert cells[1] == f"{summary['sparse']['cycles'] / 2:,.0f}"
    assert cells[3] == f"{summary['speedup']:.2f}×"


def test_markdown_lists_limitations(markdown, folder):
    summary = json.loads((folder / "summary.json").read_text())
    first = summary["limitations"][0]
    assert f"- {first}" in markdown


# HTML ------------------------------------------------------------------------------


def test_html_embeds_every_figure(page):
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(images) == len(FIGURE_STEMS)
    for source in images:
        assert source.startswith("data:image/png;base64,")


def test_html_images_are_png(page):
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        assert base64.b64decode(data).startswith(b"\x89PNG")


def test_html_links_no_files(page):
    assert re.findall(r'(?:src|href)="(?!data:)', page) == []


def test_html_has_tables(page):
    assert page.count("<table") == 4


def test_html_has_captions(page):
    assert page.count("<figcaption>") == len(FIGURE_STEMS)


# Escaping and content blocks ---------------------------------------------------------


def odd_results() -> Results:
    """Results of one layer whose name contains Markdown and HTML syntax."""
    rows = []
    for pass_ in ("FW", "BW", "WU"):
        row = {column: 1.0 for column in REQUIRED_COLUMNS}
        row.update({"iteration": 0, "layer": "<b>a|b</b>", "pass": pass_,
                    "sparse_energy_mac_pj": 1.0, "dense_energy_mac_pj": 2.0})
        rows.append(row)
    summary = {"results_format": RESULTS_FORMAT, "workload": "odd", "batch": 1,
               "trace": {"path": "generated synthetic trace (not kept)", "synthetic": False}}
    return Results(summary=summary, rows=tuple(rows), columns=tuple(rows[0]))


def test_html_escapes_layer_names(tmp_path):
    _, html_path = write_report_page(odd_results(), tmp_path)
    html_text = html_path.read_text()
    assert "&lt;b&gt;a|b&lt;/b&gt;" in html_text
    assert "<b>a" not in html_text


def test_markdown_escapes_pipes(tmp_path):
    markdown_path, _ = write_report_page(odd_results(), tmp_path)
    assert "| \\<b\\>a\\|b\\</b\\> |" in markdown_path.read_text()


def test_html_title_names_workload():
    assert "<title>procrustes-sim report: odd</title>" in render_html([], odd_results())


def test_settings_table_aligns_left():
    table = Block("table", header=("setting", "value"), rows=(("a", "b"),), numeric=False)
    assert "|---|---|" in render_markdown([table])


def test_page_without_pe_work_lists_reason(folder, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(folder, copy)
    (copy / "pe_work.npz").unlink()
    markdown_path, _ = write_report_page(copy)
    text = markdown_path.read_text()
    assert "## Figures not drawn" in text
    assert "--record-pe LAYER:PASS" in text


def test_report_object_needs_out(report):
    with pytest.raises(InputError, match="give out="):
        write_report_page(report)


def test_report_object_writes_pages(report, tmp_path):
    markdown_path, html_path = write_report_page(report, tmp_path)
    assert markdown_path.stat().st_size > 0
    assert html_path.stat().st_size > 0


# Command line ------------------------------------------------------------------------


def invoke(capsys, *args) -> tuple[int, str, str]:
    try:
        code = main([str(arg) for arg in args])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_report_prints_paths(capsys, folder, tmp_path):
    code, out, _ = invoke(capsys, "report", folder, "--out", tmp_path)
    assert code == 0
    assert out == f"wrote {tmp_path / 'report.md'} and {tmp_path / 'report.html'}\n"


def test_cli_report_bad_folder(capsys, tmp_path):
    code, _, err = invoke(capsys, "report", tmp_path / "missing")
    assert code == 2
    assert "does not exist" in err
    assert err.count("\n") == 1


def test_cli_report_old_format(capsys, folder, tmp_path):
    shutil.copytree(folder, tmp_path / "results")
    summary_path = tmp_path / "results" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["results_format"] = RESULTS_FORMAT + 1
    summary_path.write_text(json.dumps(summary))
    code, _, err = invoke(capsys, "report", tmp_path / "results")
    assert code == 2
    assert f"results_format {RESULTS_FORMAT + 1}" in err
