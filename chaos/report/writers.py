"""Reports of a resilience run: a JSON journal, JUnit XML, a self-contained HTML page with
one timeline picture per scenario (matplotlib), and the summary table for terminals.

Every stack's runs are reported alike. The timeline shows the answers per time bucket
by status, latency, the fault window, every event (the engine's and the fault's) and the
lost writes; on a clustered stack a second panel shows which node was primary when."""

from __future__ import annotations

import base64
import html
import io
import json
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chaos.infra.roles import PRIMARY, RoleSample
from chaos.run.result import ScenarioResult
from chaos.run.verdict import evidence

__all__ = [
    "primary_spans",
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
_NODE_COLOURS = ("#1565c0", "#ef6c00", "#00838f", "#6d4c41")


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
        "statuses_touched": dict(r.statuses_touched()),
        "statuses_all": dict(Counter(op.label for op in r.operations)),
        "health_during": r.health_during,
        "checks": [c.as_dict() for c in r.checks],
        "leaks": {
            "baseline": r.baseline.as_dict() if r.baseline else None,
            "after": r.after.as_dict() if r.after else None,
        },
        "notes": r.notes,
        "evidence": evidence(r),
        "events": {k: round(v, 3) for k, v in r.events.items()},
        "nodes": r.nodes,
        "roles": [
            {"sent": round(s.sent, 3), "time": round(s.time, 3), "node": s.node, "role": s.role}
            for s in r.roles
        ],
        "lost_writes": r.lost_writes.as_dict() if r.lost_writes else None,
        "history": [
            {
                "kind": op.kind,
                "actor": op.actor,
                "key": op.key,
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


def primary_spans(
    samples: Sequence[RoleSample], end: float
) -> dict[str, list[tuple[float, float]]]:
    """(start, width) of each stretch during which a node said it was primary."""
    spans: dict[str, list[tuple[float, float]]] = {}
    since: dict[str, float] = {}
    for sample in samples:
        if sample.role == PRIMARY and sample.node not in since:
            since[sample.node] = sample.time
        elif sample.role != PRIMARY and sample.node in since:
            start = since.pop(sample.node)
            spans.setdefault(sample.node, []).append((start, sample.time - start))
    for node, start in since.items():
        spans.setdefault(node, []).append((start, end - start))
    return spans


def timeline_png(r: ScenarioResult, *, bucket: float = 0.1) -> bytes:
    """Requests over time by status (stacked bars), latency on a second axis, the fault
    window shaded, events as labelled lines, lost writes as crosses; on a clustered stack,
    a second panel with who was primary when."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = r.operations
    end = max([op.end for op in ops] + list(r.events.values()) + [1.0])
    if r.nodes:
        fig, (ax, roles) = plt.subplots(
            2, 1, figsize=(9, 4.2), dpi=100, sharex=True, gridspec_kw={"height_ratios": [4, 1]}
        )
    else:
        fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
        roles = None
    try:
        bucket = max(bucket, end / 400)  # at most 400 bars, however long the run
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
        top = max(bottom, default=0) * 1.3 + 1  # room for the legend
        ax.axvspan(r.fault_start, r.fault_end, color="#ef9a9a", alpha=0.25, label="fault")
        if r.recovered_at is not None:
            ax.axvline(
                r.recovered_at, color="#1565c0", linestyle="--", linewidth=1, label="recovered"
            )
        lost = r.lost_writes.lost if r.lost_writes else ()
        if lost:
            ax.scatter(
                [w.answered_at for w in lost],
                [top / 20] * len(lost),
                marker="x",
                color="#b71c1c",
                s=18,
                label=f"lost write ({len(lost)})",
                zorder=5,
            )
        # Labels of events close together are staggered, so they stay readable.
        previous, height = -end, 1.0
        for name, at in r.events.items():
            if name in ("recovered",):
                continue
            for axis in (ax, roles) if roles is not None else (ax,):
                axis.axvline(at, color="#455a64", linestyle=":", linewidth=0.7)
            height = 1.0 if at - previous > end / 30 or height < 1.0 else 0.72
            previous = at
            ax.annotate(
                name,
                (at, height),
                xycoords=("data", "axes fraction"),
                rotation=90,
                fontsize=6,
                va="top",
                ha="right",
            )
        ax.set_ylim(0, top)
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
        ax.legend(loc="upper left", fontsize=7, ncol=5)
        title = textwrap.shorten(f"{r.scenario.name}: {r.scenario.fault.kind}", width=110)
        ax.set_title(title, fontsize=9)
        if roles is not None:
            spans = primary_spans(r.roles, end)
            for i, node in enumerate(r.nodes):
                roles.broken_barh(
                    spans.get(node, []),
                    (i - 0.4, 0.8),
                    color=_NODE_COLOURS[i % len(_NODE_COLOURS)],
                )
            roles.set_yticks(range(len(r.nodes)), [f"{n} primary" for n in r.nodes], fontsize=7)
            roles.set_ylim(-0.6, len(r.nodes) - 0.4)
            roles.set_xlabel("seconds since start")
        else:
            ax.set_xlabel("seconds since start")
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
    "touched by fault",
    "ttf p99",
    "recover",
    "checks",
)


def summary_rows(results: Sequence[ScenarioResult]) -> list[tuple[str, ...]]:
    """One row per run: the columns of SUMMARY_HEADER."""
    rows: list[tuple[str, ...]] = []
    for r in results:
        # The set the answer checks judged: during the fault, and around its edges.
        observed = " ".join(f"{k}x{v}" for k, v in sorted(r.statuses_touched().items()))
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


_TIMELINES: OrderedDict[str, bytes] = OrderedDict()
"""Pictures already drawn, by run id: reports are rewritten after every scenario."""
_TIMELINES_KEPT = 64
"""How many pictures the cache keeps (the most recent; older ones are drawn again)."""


def _timeline(r: ScenarioResult) -> bytes:
    png = _TIMELINES.get(r.run_id)
    if png is None:
        png = _TIMELINES[r.run_id] = timeline_png(r)
        while len(_TIMELINES) > _TIMELINES_KEPT:
            _TIMELINES.popitem(last=False)
    return png


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
        events = ", ".join(f"{k} {v:.2f} s" for k, v in r.events.items()) or "-"
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
            f"<p>events: {esc(events)}</p>"
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
