"""Reports of HA runs: a JSON record and a timeline picture per scenario.

The picture has two panels on one time axis: above, the answers clients got per time
bucket by status (log scale: a refused-writes storm and steady successes both show),
with every lost write marked at the time its 200 came; below, which node was primary
when, from the role monitor. Events (partition, crash, demotion, promotion, heal,
rejoin, recovery) are vertical lines across both.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from pathlib import Path

from chaos.run.ha import HaRun, HaVerdict
from chaos.run.ha_monitor import PRIMARY, RoleSample
from chaos.run.history import Operation

__all__ = ["ha_timeline_png", "primary_spans", "write_ha_index", "write_ha_report"]

_COLOURS = {"200": "#2e7d32", "503": "#f9a825", "504": "#c62828", "500": "#6a1b9a"}
_NODE_COLOURS = ("#1565c0", "#ef6c00", "#00838f", "#6d4c41")


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


def ha_timeline_png(
    title: str,
    ops: Sequence[Operation],
    verdict: HaVerdict,
    samples: Sequence[RoleSample],
    nodes: Sequence[str],
    *,
    bucket: float = 0.25,
) -> bytes:
    """The two-panel timeline of one HA run, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, roles) = plt.subplots(
        2, 1, figsize=(10, 4.2), dpi=100, sharex=True, gridspec_kw={"height_ratios": [4, 1]}
    )
    try:
        end = max([op.end for op in ops] + list(verdict.events.values()) + [1.0])
        nbuckets = int(end / bucket) + 1
        xs = [i * bucket for i in range(nbuckets)]
        for label in sorted({op.label for op in ops}, key=lambda s: (s != "200", s)):
            counts = [0] * nbuckets
            for op in ops:
                if op.label == label:
                    counts[int(op.end / bucket)] += 1
            ax.step(
                xs,
                counts,
                where="post",
                label=label,
                color=_COLOURS.get(label, "#607d8b"),
                linewidth=1.2,
            )
        lost = verdict.lost_writes.lost
        if lost:
            ax.scatter(
                [w.answered_at for w in lost],
                [1.5] * len(lost),
                marker="x",
                color="#b71c1c",
                s=18,
                label=f"lost write ({len(lost)})",
                zorder=5,
            )
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylabel(f"answers per {bucket:g} s")
        # Labels of events close together are staggered, so they stay readable.
        previous, height = -end, 1.0
        for name, at in sorted(verdict.events.items(), key=lambda kv: kv[1]):
            for axis in (ax, roles):
                axis.axvline(at, color="#455a64", linestyle="--", linewidth=0.8)
            height = 1.0 if at - previous > end / 30 or height < 1.0 else 0.72
            previous = at
            ax.annotate(
                name,
                (at, height),
                xycoords=("data", "axes fraction"),
                rotation=90,
                fontsize=7,
                va="top",
                ha="right",
            )
        ax.legend(loc="lower left", fontsize=7, ncol=5)
        ax.set_title(title, fontsize=10)
        spans = primary_spans(samples, end)
        for i, node in enumerate(nodes):
            roles.broken_barh(
                spans.get(node, []), (i - 0.4, 0.8), color=_NODE_COLOURS[i % len(_NODE_COLOURS)]
            )
        roles.set_yticks(range(len(nodes)), [f"{n} primary" for n in nodes], fontsize=7)
        roles.set_ylim(-0.6, len(nodes) - 0.4)
        roles.set_xlabel("seconds since start")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def write_ha_report(directory: Path, name: str, run: HaRun, verdict: HaVerdict) -> list[Path]:
    """`<name>.json` (checks, events, role changes, lost writes), `<name>.png`, and the
    directory's `index.html` brought up to date."""
    directory.mkdir(parents=True, exist_ok=True)
    record = {
        "scenario": name,
        "passed": verdict.passed,
        "checks": [c.as_dict() for c in verdict.checks],
        "events": {k: round(v, 3) for k, v in verdict.events.items()},
        "roles": [{"time": round(t, 3), "node": n, "role": r} for t, n, r in verdict.roles],
        "statuses": run.statuses(),
        "lost_writes": verdict.lost_writes.as_dict(),
    }
    json_path = directory / f"{name}.json"
    json_path.write_text(json.dumps(record, indent=2))
    png_path = directory / f"{name}.png"
    png_path.write_bytes(
        ha_timeline_png(
            name,
            run.operations(),
            verdict,
            run.monitor.samples(),
            [n.name for n in run.stack.nodes],
        )
    )
    return [json_path, png_path, write_ha_index(directory)]


def _record_html(record: dict[str, object]) -> str:
    name = html.escape(str(record["scenario"]))
    verdict = "PASS" if record["passed"] else "FAIL"
    checks = record.get("checks") or []
    assert isinstance(checks, list)
    rows = "".join(
        f"<tr class={'ok' if c['passed'] else 'bad'}><td>{'PASS' if c['passed'] else 'FAIL'}"
        f"</td><td>{html.escape(str(c['name']))}</td><td>{html.escape(str(c['detail']))}</td></tr>"
        for c in checks
    )
    lost_writes = record.get("lost_writes") or {}
    assert isinstance(lost_writes, dict)
    lost = lost_writes.get("lost") or []
    lost_rows = "".join(
        f"<tr><td>{html.escape(str(w['user_id']))}</td><td>{html.escape(str(w['coupon']))}</td>"
        f"<td>{w['answered_at']:.3f} s</td><td>{html.escape(str(w['node']))}</td></tr>"
        for w in lost
    )
    lost_table = (
        "<table><tr><th>user</th><th>coupon</th><th>answered at</th><th>committed by</th></tr>"
        f"{lost_rows}</table>"
        if lost
        else "<p>No acknowledged claim lost.</p>"
    )
    times = record.get("events") or {}
    assert isinstance(times, dict)
    events = html.escape(", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
    return (
        f"<h2 id='{name}'>{name}: {verdict}</h2><p>{events}</p>"
        f"<img src='{name}.png' alt='timeline of {name}'>"
        f"<table><tr><th></th><th>check</th><th>detail</th></tr>{rows}</table>"
        f"<h3>Lost writes (policy: {html.escape(str(lost_writes.get('policy')))})</h3>"
        f"{lost_table}"
    )


def write_ha_index(directory: Path) -> Path:
    """`index.html` over every `<scenario>.json` in `directory`, in name order."""
    records = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    summary = "".join(
        f"<li><a href='#{html.escape(str(r['scenario']))}'>{html.escape(str(r['scenario']))}"
        f"</a>: {'PASS' if r['passed'] else 'FAIL'}</li>"
        for r in records
    )
    page = (
        "<!doctype html><meta charset='utf-8'><title>HA scenarios</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}"
        "table{border-collapse:collapse;margin:8px 0}.bad{background:#fde0dc}"
        "</style><h1>HA scenarios</h1>"
        f"<ul>{summary}</ul>" + "".join(_record_html(r) for r in records)
    )
    path = directory / "index.html"
    path.write_text(page)
    return path
