"""Reports of a resilience run: a JSON journal, JUnit XML, a self-contained HTML page with
one timeline picture per scenario (matplotlib), and the summary table for terminals."""

from __future__ import annotations

import base64
import html
import io
import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chaos.checks.answers import evidence
from chaos.run.result import ScenarioResult

__all__ = [
    "result_to_dict",
    "summary_rows",
    "summary_table",
    "timeline_png",
    "write_html",
    "write_journal",
    "write_junit",
    "write_reports",
]

_COLOURS = {
    "200": "#2e7d32",
    "503": "#f9a825",
    "504": "#c62828",
    "400": "#6a1b9a",
    "409": "#283593",
    "500": "#000000",
}


def _fmt(value: float | None, unit: str = " s") -> str:
    return "-" if value is None else f"{value:.3f}{unit}"


def result_to_dict(r: ScenarioResult) -> dict[str, Any]:
    """Everything about one run, JSON-ready."""
    return {
        "scenario": r.scenario.name,
        "description": r.scenario.description,
        "fault": r.scenario.fault.kind,
        "expected": r.scenario.expected_text(),
        "run_id": r.run_id,
        "started_at": r.started_at,
        "passed": r.passed,
        "limits": asdict(r.limits),
        "fault_window": {
            "inject_began": r.inject_began,
            "in_effect": r.fault_start,
            "remove_began": r.fault_end,
            "lifted": r.lifted,
        },
        "timings": {
            "time_to_fail_p50": r.time_to_fail(50),
            "time_to_fail_p99": r.time_to_fail(99),
            "time_to_recover": r.time_to_recover,
            "settle_seconds": r.settle_seconds,
            "wall_seconds": r.wall_seconds,
        },
        "statuses_during": dict(r.statuses_during()),
        "statuses_all": dict(Counter(op.label for op in r.operations)),
        "health_during": r.health_during,
        "checks": [c.as_dict() for c in r.checks],
        "leaks": {
            "baseline": r.baseline.as_dict() if r.baseline else None,
            "after": r.after.as_dict() if r.after else None,
        },
        "notes": r.notes,
        "evidence": evidence(r),
        "history": [
            {
                "user_id": op.user_id,
                "coupon": op.coupon,
                "start": round(op.start, 6),
                "end": round(op.end, 6),
                "status": op.status,
                "error": op.error,
                "outcome": op.outcome.value,
                "write_attempted": op.write_attempted,
            }
            for op in r.operations
        ],
    }


def write_journal(results: Sequence[ScenarioResult], path: Path) -> None:
    """The JSON journal: one entry per scenario run."""
    path.write_text(json.dumps([result_to_dict(r) for r in results], indent=1, default=str))


def write_junit(results: Sequence[ScenarioResult], path: Path) -> None:
    """JUnit XML: one test case per scenario run, failures carry the failed checks."""
    failures = sum(not r.passed for r in results)
    suite = ET.Element(
        "testsuite",
        name="chaos",
        tests=str(len(results)),
        failures=str(failures),
        time=f"{sum(r.wall_seconds for r in results):.3f}",
    )
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="chaos.scenarios",
            name=r.scenario.name,
            time=f"{r.wall_seconds:.3f}",
        )
        if not r.passed:
            failed = r.failed_checks()
            node = ET.SubElement(
                case, "failure", message="; ".join(f"{c.name}: {c.detail}" for c in failed)
            )
            node.text = r.summary()
        out = ET.SubElement(case, "system-out")
        out.text = r.summary()
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def timeline_png(r: ScenarioResult, *, bucket: float = 0.1) -> bytes:
    """Requests over time by status (stacked bars), latency on a second axis, the fault
    window shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    try:
        ops = r.operations
        end = max((op.end for op in ops), default=1.0)
        nbuckets = int(end / bucket) + 1
        labels = sorted({op.label for op in ops}, key=lambda s: (s != "200", s))
        bottom = [0] * nbuckets
        xs = [i * bucket for i in range(nbuckets)]
        for label in labels:
            counts = [0] * nbuckets
            for op in ops:
                if op.label == label:
                    counts[int(op.end / bucket)] += 1
            ax.bar(
                xs,
                counts,
                width=bucket,
                bottom=bottom,
                align="edge",
                label=label,
                color=_COLOURS.get(label, "#607d8b"),
                alpha=0.85,
            )
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        ax.axvspan(r.inject_began, r.lifted, color="#ef9a9a", alpha=0.25, label="fault")
        if r.recovered_at is not None:
            ax.axvline(
                r.recovered_at, color="#1565c0", linestyle="--", linewidth=1, label="recovered"
            )
        ax.set_ylim(0, max(bottom, default=0) * 1.3 + 1)  # room for the legend
        ax.set_xlabel("seconds since start")
        ax.set_ylabel(f"answers per {bucket:g} s")
        lat = ax.twinx()
        lat.scatter(
            [op.end for op in ops],
            [op.latency for op in ops],
            s=4,
            color="#37474f",
            alpha=0.5,
            label="latency",
        )
        lat.axhline(r.limits.request_deadline, color="#c62828", linestyle=":", linewidth=1)
        lat.set_ylabel("latency (s)")
        ax.legend(loc="upper left", fontsize=7, ncol=4)
        ax.set_title(f"{r.scenario.name}: {r.scenario.fault.kind}", fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


SUMMARY_HEADER = (
    "scenario",
    "fault",
    "expected",
    "observed during fault",
    "ttf p99",
    "recover",
    "checks",
)


def summary_rows(results: Sequence[ScenarioResult]) -> list[tuple[str, ...]]:
    """One row per run: the columns of SUMMARY_HEADER."""
    rows: list[tuple[str, ...]] = []
    for r in results:
        observed = " ".join(f"{k}x{v}" for k, v in sorted(r.statuses_during().items()))
        passed = sum(c.passed for c in r.checks)
        rows.append(
            (
                r.scenario.name,
                r.scenario.fault.kind,
                r.scenario.expected_text(),
                observed or "-",
                _fmt(r.time_to_fail(99)),
                _fmt(r.time_to_recover),
                f"{passed}/{len(r.checks)} {'PASS' if r.passed else 'FAIL'}",
            )
        )
    return rows


def summary_table(results: Sequence[ScenarioResult]) -> str:
    """The summary as a plain-text table."""
    rows: list[tuple[str, ...]] = [SUMMARY_HEADER, *summary_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(SUMMARY_HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


_TIMELINES: dict[int, tuple[ScenarioResult, bytes]] = {}
"""Pictures already drawn, by result: reports are rewritten after every scenario."""


def _timeline(r: ScenarioResult) -> bytes:
    cached = _TIMELINES.get(id(r))
    if cached is None or cached[0] is not r:
        cached = (r, timeline_png(r))
        _TIMELINES[id(r)] = cached
    return cached[1]


def write_html(results: Sequence[ScenarioResult], path: Path) -> None:
    """One self-contained page: the summary, then each scenario with its timeline."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in SUMMARY_HEADER)
    body_rows = "".join(
        f"<tr class='{'ok' if r.passed else 'bad'}'>"
        + "".join(f"<td>{esc(c)}</td>" for c in row)
        + "</tr>"
        for r, row in zip(results, summary_rows(results), strict=True)
    )
    sections = []
    for r in results:
        png = base64.b64encode(_timeline(r)).decode()
        checks = "".join(
            f"<tr class='{'ok' if c.passed else 'bad'}'><td>{'ok' if c.passed else 'FAIL'}</td>"
            f"<td>{esc(c.name)}</td><td>{esc(c.detail)}</td></tr>"
            for c in r.checks
        )
        sections.append(
            f"<section><h2>{esc(r.scenario.name)}</h2><p>{esc(r.scenario.description)}</p>"
            f"<p>fault <b>{esc(r.scenario.fault.kind)}</b>, expected "
            f"{esc(r.scenario.expected_text())}; time to fail p50 {_fmt(r.time_to_fail(50))}, "
            f"p99 {_fmt(r.time_to_fail(99))}; time to recover {_fmt(r.time_to_recover)}</p>"
            f"<img alt='timeline of {esc(r.scenario.name)}' src='data:image/png;base64,{png}'>"
            f"<table>{checks}</table></section>"
        )
    passed = sum(r.passed for r in results)
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Resilience report</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;font-size:13px;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
        "tr.bad td{background:#ffebee}tr.ok td:first-child{color:#2e7d32}"
        "img{max-width:100%}</style></head><body>"
        f"<h1>Resilience report</h1><p>{passed} of {len(results)} scenario runs passed.</p>"
        f"<table><tr>{head}</tr>{body_rows}</table>{''.join(sections)}</body></html>"
    )


def write_reports(results: Sequence[ScenarioResult], directory: Path) -> dict[str, Path]:
    """journal.json, junit.xml and report.html in `directory` (call it after each
    scenario: a run that crashes keeps the reports of what finished)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "journal": directory / "journal.json",
        "junit": directory / "junit.xml",
        "html": directory / "report.html",
    }
    write_journal(results, paths["journal"])
    write_junit(results, paths["junit"])
    write_html(results, paths["html"])
    return paths
