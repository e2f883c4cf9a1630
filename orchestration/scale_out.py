"""What changes when the index runs across hosts: storage options, cross-host locks, the
consumers' devices, and the start-up check of the configuration.

The core takes storage options and a lock DSN as arguments (`tables.use_storage_options`,
`locking.use_postgres_locks`); this module picks them from the configuration and the Dagster
instance, once per process (`install`), and refuses a configuration that cannot work with an
error naming the setting (`check_configuration`), where the code location loads and where a
step starts. No Dagster import here: the CLI calls `install` first, and must not import
Dagster before it has started the step server (`launch.py`).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping

from indexer_core.storage import locking
from indexer_core.storage import tables as storage
from orchestration.config import Config

EXECUTORS = ("multiprocess", "celery", "k8s", "in_process")
DISTRIBUTED = ("celery", "k8s")
INTEGRATIONS = ("dagster-celery", "dagster-postgres", "dagster-aws", "dagster-k8s")
_CREDENTIALS = ("aws_access_key_id", "aws_skip_signature", "aws_web_identity_token_file")
_ENDPOINTS = ("aws_endpoint", "aws_region", "region", "aws_default_region", "endpoint")


class ConfigurationError(ValueError):
    """A setting that cannot work; the message names it."""


def install(settings: Config, instance=None) -> None:
    """Give this process's LanceDB connections their storage options and its partition
    locks their Postgres (the setting, else the instance's own Postgres storage)."""
    storage.use_storage_options(settings.lancedb_storage_options())
    locking.use_postgres_locks(lock_dsn(settings, instance))


def lock_dsn(settings: Config, instance=None) -> str | None:
    """`CODE_INDEX_LOCK_DSN`, else the URL of the instance's Postgres run storage, else None."""
    if settings.lock_dsn:
        return settings.lock_dsn
    run_storage = getattr(instance, "run_storage", None) if instance is not None else None
    return getattr(run_storage, "postgres_url", None)


def consumer_device(device: str, index: int) -> str:
    """Consumer `index`'s device: on a host with several GPUs, `auto` or `cuda` spread the
    consumers over them (`cuda:index mod count`); any other device is taken as given."""
    if device not in ("auto", "cuda") or index == 0:
        return device
    import torch  # the consumer loads the model with it anyway

    count = torch.cuda.device_count()
    return f"cuda:{index % count}" if count > 1 else device


def check_configuration(
    settings: Config, versions: Mapping[str, str] | None = None, dagster_version: str = ""
) -> None:
    """Raise `ConfigurationError` naming the setting for a configuration that cannot work."""
    if settings.executor not in EXECUTORS:
        raise ConfigurationError(
            f"CODE_INDEX_EXECUTOR={settings.executor!r}: expected one of {', '.join(EXECUTORS)}"
        )
    if settings.embed_consumers < 1:
        raise ConfigurationError("CODE_INDEX_EMBED_CONSUMERS must be at least 1")
    if settings.celery_poll_seconds <= 0:
        raise ConfigurationError("CODE_INDEX_CELERY_POLL_SECONDS must be above 0")
    _check_versions(settings, versions, dagster_version)
    if settings.executor == "celery" and not settings.celery_broker:
        raise ConfigurationError(
            "CODE_INDEX_EXECUTOR=celery needs CODE_INDEX_CELERY_BROKER (e.g. redis://host:6379/0)"
        )
    if settings.executor in DISTRIBUTED and not settings.step_outputs.startswith("s3://"):
        raise ConfigurationError(
            f"CODE_INDEX_EXECUTOR={settings.executor} runs steps on several hosts, but step "
            "outputs go to the local filesystem IO manager: set CODE_INDEX_STEP_OUTPUTS="
            "s3://bucket/prefix"
        )
    _check_object_store(settings)


def check_locks(settings: Config, db_uri: str) -> None:
    """Several consumers on an object store need locks that work there (Postgres); called
    once `install` has chosen the locks, where a step starts."""
    shared_store = locking.local_path(db_uri) is None
    if settings.embed_consumers > 1 and shared_store and locking.postgres_dsn() is None:
        raise ConfigurationError(
            f"CODE_INDEX_EMBED_CONSUMERS={settings.embed_consumers} on {db_uri} needs "
            "locks that work across hosts: set CODE_INDEX_LOCK_DSN (Postgres) or keep "
            "the Dagster instance on Postgres"
        )


def _check_object_store(settings: Config) -> None:
    uri = settings.lancedb_uri
    if not uri.startswith("s3://"):
        return
    options = {k.lower(): v for k, v in settings.lancedb_storage_options().items()}
    options.update({k.lower(): v for k, v in settings.aws().items()})
    has_credentials = any(options.get(k) for k in _CREDENTIALS) or options.get("aws_profile")
    if not has_credentials:
        raise ConfigurationError(
            f"CODE_INDEX_DB={uri} has no credentials: set aws_access_key_id and "
            "aws_secret_access_key in CODE_INDEX_STORAGE_OPTIONS (or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
        )
    if not any(options.get(k) for k in _ENDPOINTS + ("aws_endpoint_url",)):
        raise ConfigurationError(
            f"CODE_INDEX_DB={uri} has no endpoint or region: set aws_endpoint (and allow_http "
            "for http://) or aws_region in CODE_INDEX_STORAGE_OPTIONS (or AWS_ENDPOINT / "
            "AWS_REGION)"
        )


def installed_versions() -> dict[str, str]:
    """Versions of dagster's integration libraries installed here."""
    found = {}
    for name in INTEGRATIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def matching_integration(dagster_version: str) -> str:
    """The integration libraries' version that goes with a dagster release (1.13.27 ->
    0.29.27: their minor is dagster's plus 16)."""
    major, minor, patch = dagster_version.split(".")[:3]
    if major != "1":
        return ""
    return f"0.{int(minor) + 16}.{patch}"


def _check_versions(settings: Config, versions, dagster_version: str) -> None:
    if not dagster_version:
        dagster_version = importlib.metadata.version("dagster")
    versions = installed_versions() if versions is None else versions
    wanted = matching_integration(dagster_version)
    needed = {"celery": "dagster-celery", "k8s": "dagster-k8s"}.get(settings.executor)
    if needed and needed not in versions:
        raise ConfigurationError(
            f"CODE_INDEX_EXECUTOR={settings.executor} needs {needed}=={wanted} "
            "(pip install 'code-index[cluster]')"
        )
    wrong = {name: v for name, v in versions.items() if wanted and v != wanted}
    if wrong:
        listed = ", ".join(f"{name}=={v}" for name, v in sorted(wrong.items()))
        raise ConfigurationError(
            f"dagster=={dagster_version} needs its integration libraries at {wanted}, found "
            f"{listed}: install matching versions (the `cluster` extra pins them)"
        )
