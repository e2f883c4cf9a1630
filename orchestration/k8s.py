"""The Kubernetes profile: `k8s_job_executor`, a pod per step, the embedding consumers on GPUs.

Chunk steps get the default pod; each consumer op gets one GPU (`nvidia.com/gpu` limit), a
node selector for GPU nodes and the toleration of their taint, through the executor's
`per_step_k8s_config` (by op name). The tag limit keeps consumers at one per GPU, as the
multiprocess executor does. `deploy/k8s/` holds the Helm values of a Postgres-backed
deployment that loads this code location.
"""

from __future__ import annotations

import dagster as dg

from orchestration.config import Config

GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def consumer_op_names(count: int) -> list[str]:
    """The ops of the `count` embedding consumers."""
    from orchestration.assets.index import consumer_op_name

    return [consumer_op_name(i) for i in range(count)]


def gpu_step_config() -> dict:
    """Pod settings of one embedding consumer: a GPU, on a GPU node."""
    return {
        "container_config": {"resources": {"limits": {GPU_RESOURCE: 1}}},
        "pod_spec_config": {
            "node_selector": dict(GPU_NODE_SELECTOR),
            "tolerations": [dict(GPU_TOLERATION)],
        },
    }


def k8s_executor_config(settings: Config, tag_limits: list[dict]) -> dict:
    """The `k8s_job_executor` config of an index run."""
    return {
        "max_concurrent": settings.max_concurrent + settings.embed_consumers - 1,
        "tag_concurrency_limits": tag_limits,
        "per_step_k8s_config": {
            name: gpu_step_config() for name in consumer_op_names(settings.embed_consumers)
        },
    }


def k8s_executor(settings: Config, tag_limits: list[dict]) -> dg.ExecutorDefinition:
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(k8s_executor_config(settings, tag_limits))
