"""What the pipeline costs beyond its encoder, measured the way a user runs it.

One run of `code-index index --force` (a fresh process, a fresh index and Dagster home) on a
tree (or `--rounds N`, each followed by its own encode limit), then, in the same run of this
script and as limits:
- our encoder alone on exactly the texts the pipeline embedded (headers included, each
  distinct text once), loaded as the pipeline loads it (`load_encoder`: on the CPU the
  model's ONNX export on every core), same device and batch size, timed after loading;
- the model's own sentence-transformers `encode` of the same texts, beside it;
- with `--device simulated:RATE`, the simulated encode time of those texts (their tokens
  at RATE tokens per second), instead of the two above;
- with `--peer`, mcp-vector-search 4.1.14 indexing a copy of the same tree with the same
  packaged model (`bench/peer_mcp_vector_search.py`).

From the run's event log: the run's own wall (RUN_START to the last event), time to the
first vector (RUN_START to the first `vectors` materialization), when each partition landed
and was embedded, and the work around the encoder (per partition: read, cache look-ups and
write, `seconds - embed_seconds` of its `vectors` record) against the encode itself.

    python -m bench.pipeline_cost --tree DIR [--peer] [--device cpu|simulated:RATE]
    python -m bench.pipeline_cost --corpus go --mb 50 --device simulated:360000 --shards 32

Writes `bench/reports/pipeline_cost_<name>.json` and `.md` (and the timeline picture).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "all-MiniLM-L6-v2"


def index_with_cli(tree: Path, work: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """`code-index index --force TREE` in a fresh process: (wall seconds, CPU seconds of its
    whole process tree, its output).

    The CPU is counted exactly from the kernel's rusage of reaped descendants (`ReapedCPU`);
    a sampler once a second only names the processes that took it (`cpu_by_process`), so
    the measuring costs the run next to nothing."""
    from bench.memory import ReapedCPU, TreeSampler

    command = [sys.executable, "-m", "orchestration.cli", "index", str(tree)]
    started = time.perf_counter()
    with ReapedCPU() as reaped, TreeSampler(interval=1.0) as tree_cpu:
        out = subprocess.run(
            [*command, "--name", "bench", "--force", "-q"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"index failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    top = sorted(tree_cpu.peaks.values(), key=lambda p: -p.cpu_seconds)[:12]
    index_with_cli.processes = [  # type: ignore[attr-defined]
        {"pid": p.pid, "label": p.label[:120], "cpu_s": round(p.cpu_seconds, 2)} for p in top
    ]
    cpu = reaped.seconds if reaped.seconds is not None else tree_cpu.cpu_seconds()
    return wall, cpu, out.stdout


def run_facts(dagster_home: Path) -> dict[str, object]:
    """Times of the last run from its event log, relative to its RUN_START."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_runs(limit=1)[0]
        logs = instance.all_logs(run.run_id)
        start = next(
            e.timestamp
            for e in logs
            if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_START
        )
        end = max(e.timestamp for e in logs)
        chunks, vectors, ready = {}, {}, None
        wait = encode = 0.0
        padded = {"tokens": 0, "padded": 0}
        for entry in logs:
            event = entry.dagster_event
            if entry.user_message.startswith("model ") and " ready in " in entry.user_message:
                ready = entry.timestamp - start
            if event is not None and event.event_type == dg.DagsterEventType.STEP_OUTPUT:
                meta = event.event_specific_data.metadata
                if "encoder_padded_tokens" in meta:  # the consumer's batches, padding counted
                    padded["tokens"] += int(meta["encoder_tokens"].value)
                    padded["padded"] += int(meta["encoder_padded_tokens"].value)
            if event is None or event.event_type != dg.DagsterEventType.ASSET_MATERIALIZATION:
                continue
            mat = event.event_specific_data.materialization
            if mat.asset_key == dg.AssetKey("chunks"):
                chunks[mat.partition] = entry.timestamp - start
            elif mat.asset_key == dg.AssetKey("vectors"):
                vectors[mat.partition] = entry.timestamp - start
                meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
                wait += float(meta.get("encoder_wait_seconds", 0.0))
                encode += float(meta.get("embed_seconds", 0.0))
        from bench.events import overlap, read_timeline

        timeline = read_timeline(instance, run.run_id)
        return {
            "run_id": run.run_id,
            "status": run.status.value,
            "run_wall_s": round(end - start, 3),
            "time_to_first_vector_s": round(min(vectors.values()), 3) if vectors else None,
            "consumer_ready_s": round(ready, 3) if ready is not None else None,
            "first_chunks_landed_s": round(min(chunks.values()), 3) if chunks else None,
            "last_chunks_landed_s": round(max(chunks.values()), 3) if chunks else None,
            "partitions": len(chunks),
            "consumer_encode_s": round(encode, 3),
            # the encoder waiting on reads and writes of partitions that had landed
            "consumer_encoder_wait_s": round(wait, 3),
            "encoder_wait_share_of_encode": round(wait / encode, 3) if encode else None,
            "overlap": overlap(timeline),
            **_padding("consumer", padded["tokens"], padded["padded"]),
        }, timeline


def _padding(who: str, tokens: int, padded: int) -> dict[str, object]:
    """The padded tokens an encoder ran against the texts' own, where it counted them."""
    if not tokens:
        return {}
    return {
        f"{who}_tokens": tokens,
        f"{who}_padded_tokens": padded,
        f"{who}_padding": round(padded / tokens - 1.0, 4),
    }


def embedded_texts(db_uri: str) -> tuple[int, list[str]]:
    from indexer_core.storage import tables as storage

    table = storage.connect(db_uri).open_table(storage.CHUNKS).to_arrow()
    unique: dict[str, str] = {}
    for h, text in zip(
        table.column("content_hash").to_pylist(), table.column("embed_text").to_pylist()
    ):
        unique.setdefault(h, text)
    return table.num_rows, list(unique.values())


def our_encode(texts: list[str], device: str, batch_size: int) -> dict[str, object]:
    """Our encoder, loaded as the pipeline loads it, on exactly `texts`: its wall and CPU
    after loading, or with a simulated device those texts' tokens at its rate."""
    from indexer_core.embedding.model import load_encoder
    from indexer_core.embedding.query_encoder import QueryEncoderOptions
    from indexer_core.embedding.simulated import simulated_rate

    rate = simulated_rate(device)
    if rate is not None:
        from indexer_core.embedding.simulated import load_simulated

        tokens = load_simulated(MODEL, device).device_tokens(texts)  # as the pipeline charged
        return {
            "texts": len(texts),
            "tokens": tokens,
            "simulated_rate": rate,
            "our_encode_s": round(tokens / rate, 3),
        }
    ours = load_encoder(MODEL, device, batch_size, onnx=QueryEncoderOptions())
    ours.encode(texts[:64])  # warm-up, as the pipeline's first batch pays it too
    before = getattr(ours, "tokens", 0), getattr(ours, "padded_tokens", 0)
    started, cpu = time.perf_counter(), time.process_time()
    ours.encode(texts)
    our_s, our_cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "texts": len(texts),
        "our_encoder": f"{type(ours).__name__} on {ours.device}, batch {ours.batch_size}",
        "our_encode_s": round(our_s, 3),
        "our_encode_cpu_s": round(our_cpu, 3),
        **_padding(
            "our_encode",
            getattr(ours, "tokens", 0) - before[0],
            getattr(ours, "padded_tokens", 0) - before[1],
        ),
    }


def models_own_encode(texts: list[str], device: str, batch_size: int) -> dict[str, object]:
    """The model's own sentence-transformers `encode` of `texts`, reported beside ours."""
    from bench.embedding import bare_encode
    from indexer_core.embedding.model import load_embedder

    model = load_embedder(MODEL, device, batch_size)
    model.encode(texts[:64])
    return {
        "models_own_encode_s": round(bare_encode(model, texts), 3),
        "models_own_encoder": f"sentence-transformers on {model.device}, batch {model.batch_size}",
    }


def ensure_onnx_export() -> None:
    """The pipeline encodes on the CPU with the model's ONNX export, which the first run on a
    machine makes; a benchmark measures the machine after that first run."""
    from indexer_core.embedding import query_encoder
    from indexer_core.embedding.model import load_embedder

    target = query_encoder.export_target(MODEL)
    if target is not None and not target[1].is_file():
        query_encoder.export_for_queries(load_embedder(MODEL, "cpu", 0), MODEL)


def measure(args: argparse.Namespace) -> dict[str, object]:
    from bench import machine

    work = Path(args.work or tempfile.mkdtemp(prefix="pipeline-cost-"))
    shutil.rmtree(work / "home", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    tree = Path(args.tree) if args.tree else _corpus_slice(args.corpus, args.mb, work)
    env = {
        **os.environ,
        "CODE_INDEX_HOME": str(work / "home"),
        "CODE_INDEX_DEVICE": args.device,
        "PYTHONPATH": str(PROJECT),
    }
    env.pop("DAGSTER_HOME", None)
    env.pop("CODE_INDEX_DB", None)
    if args.shards:
        env["CODE_INDEX_SHARDS"] = str(args.shards)
    if args.device.startswith("cpu") or args.device == "auto":
        ensure_onnx_export()
    # Each round: a pipeline run from scratch, then our encoder on exactly the texts it
    # embedded. Each run's ratio is against the encode measured right after it: these VMs'
    # speed drifts by up to 2x within minutes, so only adjacent measurements compare.
    rounds = []
    for _ in range(args.rounds):
        shutil.rmtree(work / "home", ignore_errors=True)
        wall, cpu, _ = index_with_cli(tree, work, env)
        facts, timeline = run_facts(work / "home" / "dagster_home")
        chunks, texts = embedded_texts(str(work / "home" / "lancedb"))
        limits = our_encode(texts, args.device, args.batch_size)
        row = {
            "cli_wall_s": round(wall, 3),
            "run_wall_s": facts["run_wall_s"],
            "time_to_first_vector_s": facts["time_to_first_vector_s"],
            "our_encode_s": limits["our_encode_s"],
            "cli_wall_over_our_encode": round(wall / limits["our_encode_s"], 3),
            "run_wall_over_our_encode": round(facts["run_wall_s"] / limits["our_encode_s"], 3),
        }
        for key in ("consumer_padding", "our_encode_padding"):
            if key in facts or key in limits:
                row[key] = facts.get(key, limits.get(key))
        if limits.get("our_encode_cpu_s"):
            # What the run costs in CPU against what the encode alone costs: on a CPU-bound
            # machine wall follows CPU, and other work's load does not inflate CPU seconds.
            row["cli_cpu_over_our_encode_cpu"] = round(cpu / limits["our_encode_cpu_s"], 3)
        rounds.append(row)
        print(json.dumps(row), flush=True)
    if not args.device.startswith("simulated") and not args.no_models_own:
        limits.update(models_own_encode(texts, args.device, args.batch_size))
    result: dict[str, object] = {
        "command": "python -m bench.pipeline_cost " + " ".join(sys.argv[1:]),
        "machine": machine.one_line(machine.describe()),
        "tree": str(tree),
        "files_mb": round(
            sum(p.stat().st_size for p in tree.rglob("*") if p.is_file() and ".git" not in p.parts)
            / 1e6,
            2,
        ),
        "chunks": chunks,
        "cli_wall_s": round(wall, 3),
        "cli_cpu_s": round(cpu, 3),  # every process of the run: CLI, steps, consumer
        "cpu_by_process": getattr(index_with_cli, "processes", []),
        **facts,
        **limits,
        **rounds[-1],
    }
    if len(rounds) > 1:
        result["rounds"] = rounds
        for key in rounds[0]:
            if "_over_" in key:
                result[f"median_{key}"] = round(statistics.median(r[key] for r in rounds), 3)
    if args.peer:
        from bench.peer_mcp_vector_search import measure_peer

        peer = measure_peer(tree, work / "peer")
        result["peer"] = peer
        result["cli_wall_over_peer_wall"] = round(wall / float(peer["wall_s"]), 3)
    if args.picture:
        try:
            from bench.timeline import draw

            Path(args.out).mkdir(parents=True, exist_ok=True)
            png = Path(args.out) / f"pipeline_cost_{args.name}_timeline.png"
            draw(timeline, png, f"{args.name}: {chunks} chunks, {args.device}, wall {wall:.1f}s")
            result["timeline_png"] = str(png)
        except ImportError as exc:  # matplotlib is the `bench` extra
            result["timeline_png"] = f"not drawn: {exc}"
    return result


def _corpus_slice(name: str, mb: float, work: Path) -> Path:
    from bench import corpora

    corpus = corpora.resolve(name)
    files = corpora.take(corpus.files(), max_bytes=int(mb * 1e6))
    return corpora.materialize(corpus, files, work / "tree")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", help="a directory to index (a git checkout, for example)")
    parser.add_argument("--corpus", default="cpython", help="else a corpus of bench/corpora.py")
    parser.add_argument("--mb", type=float, default=50.0, help="the corpus slice's size")
    parser.add_argument("--device", default="cpu", help="cpu, auto, cuda, or simulated:RATE")
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--shards", type=int, default=0, help="CODE_INDEX_SHARDS for the run")
    parser.add_argument("--peer", action="store_true", help="also time mcp-vector-search")
    parser.add_argument("--picture", action="store_true", help="draw the run's timeline")
    parser.add_argument(
        "--rounds", type=int, default=1, help="pipeline runs, each followed by our encode"
    )
    parser.add_argument(
        "--no-models-own",
        action="store_true",
        help="skip the model's own encode (a reference, not the limit): for A/B runs",
    )
    parser.add_argument("--name", default="cpu")
    parser.add_argument("--work", help="work directory (default: a new temporary one)")
    parser.add_argument("--out", default=str(PROJECT / "bench" / "reports"))
    args = parser.parse_args(argv)
    result = measure(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"pipeline_cost_{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"pipeline_cost_{args.name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(result: dict[str, object]) -> str:
    keys = [k for k, v in result.items() if not isinstance(v, dict | list)]
    lines = [f"# pipeline cost: {result['tree']}", "", "| measure | value |", "| --- | --- |"]
    lines += [f"| {k} | {result[k]} |" for k in keys]
    rounds = result.get("rounds")
    if isinstance(rounds, list):
        lines += ["", "## rounds (each run, then our encode)", ""]
        lines += ["| " + " | ".join(rounds[0]) + " |", "|" + " --- |" * len(rounds[0])]
        lines += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in rounds]
    for section in ("overlap", "peer"):
        if isinstance(result.get(section), dict):
            lines += ["", f"## {section}", "", "| measure | value |", "| --- | --- |"]
            lines += [f"| {k} | {v} |" for k, v in result[section].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
