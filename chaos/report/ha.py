"""Reports of HA runs: a JSON record and a timeline picture per scenario.

The picture has two panels on one time axis: above, the answers clients got per time
bucket by status (log scale: a refused-writes storm and steady successes both show),
with every lost write marked at the time its 200 came; below, which node was primary
when, from the role monitor. Events (partition, crash, demotion, promotion, heal,
rejoin, recovery) are vertical lines across both.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

from chaos.run.ha import HaRun, HaVerdict
from chaos.run.ha_monitor import PRIMARY, RoleSample
from chaos.run.history import Operation

__all__ = ["ha_timeline_png", "primary_spans", "write_ha_report"]

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
    """`<name>.json` (checks, events, role changes, lost writes) and `<name>.png`."""
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
    return [json_path, png_path]
