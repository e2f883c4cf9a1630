"""The timeline picture: one lane per chunk step, one for the embedding worker."""

from __future__ import annotations

from pathlib import Path

from bench.events import Timeline


def draw(timeline: Timeline, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lanes = len(timeline.chunk_steps) + 1
    height = min(0.28 * lanes + 1.6, 40)
    fig, ax = plt.subplots(figsize=(12, height))
    for i, bar in enumerate(timeline.chunk_steps):
        ax.barh(i, bar.end - bar.start, left=bar.start, height=0.7, color="#4c72b0")
    embed_row = len(timeline.chunk_steps)
    if timeline.embed_step:
        step = timeline.embed_step
        ax.barh(embed_row, step.end - step.start, left=step.start, height=0.7, color="#dddddd",
                edgecolor="#999999", label="embedding worker alive (start, model load, waiting)")
    for bar in timeline.embedded:
        ax.barh(embed_row, bar.end - bar.start, left=bar.start, height=0.7, color="#dd8452", edgecolor="white")
    labels = [b.label for b in timeline.chunk_steps] + ["embedding"]
    ax.set_yticks(range(lanes))
    ax.set_yticklabels(labels, fontsize=7 if lanes > 20 else 9)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since run start")
    ax.set_title(title, fontsize=10)
    ax.barh([], [], color="#4c72b0", label="chunk step (process start to success)")
    ax.barh([], [], color="#dd8452", label="embedding of one partition")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
