"""The timeline picture: one lane per chunk step, one for the embedding worker."""

from __future__ import annotations

from pathlib import Path

from bench.events import Timeline


def draw(timeline: Timeline, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lanes = len(timeline.chunk_steps) + 1
    height = min(0.28 * lanes + 2.4, 40)
    fig, ax = plt.subplots(figsize=(12, height))
    for i, bar in enumerate(timeline.chunk_steps):
        ready = bar.ready if bar.ready is not None else bar.start
        ax.barh(i, ready - bar.start, left=bar.start, height=0.7, color="#a6bddb")
        ax.barh(i, bar.end - ready, left=ready, height=0.7, color="#4c72b0")
    embed_row = len(timeline.chunk_steps)
    if timeline.embed_step:
        step = timeline.embed_step
        ax.barh(
            embed_row,
            step.end - step.start,
            left=step.start,
            height=0.7,
            color="#dddddd",
            edgecolor="#999999",
        )
    for bar in timeline.embedded:
        ax.barh(
            embed_row,
            bar.end - bar.start,
            left=bar.start,
            height=0.7,
            color="#dd8452",
            edgecolor="white",
        )
    labels = [b.label for b in timeline.chunk_steps] + ["embedding"]
    ax.set_yticks(range(lanes))
    ax.set_yticklabels(labels, fontsize=7 if lanes > 20 else 9)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since run start")
    ax.set_title(title, fontsize=10)
    from matplotlib.patches import Patch

    handles = [
        Patch(color="#a6bddb", label="step process starting (launch to STEP_START)"),
        Patch(color="#4c72b0", label="chunk step running (STEP_START to success)"),
        Patch(
            facecolor="#dddddd",
            edgecolor="#999999",
            label="embedding worker alive (start, model load, waiting)",
        ),
        Patch(color="#dd8452", label="embedding of one partition"),
    ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.22 if lanes < 10 else -0.05),
        ncol=2,
        fontsize=8,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
