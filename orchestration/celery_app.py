"""The Celery app of the cluster profile's workers (`dagster-celery worker start -A
orchestration.celery_app`): dagster-celery's own tasks, with the code location imported
before the worker forks.

A Celery worker forks its pool processes from its main process when it starts (and again
when one dies). With `dagster_celery.app`, each pool process imports dagster, lancedb,
tree-sitter and this code location on its first step: seconds per process, on every
worker, paid inside a run. Imported here, before the fork, every step starts warm, as the
multiprocess executor's steps do from their forkserver (`step_preload.py`).
"""

from dagster_celery.app import app, execute_job, execute_plan, resume_job

import orchestration.step_preload  # noqa: F401 - for its side effect: warm pool processes

__all__ = ["app", "execute_job", "execute_plan", "resume_job"]
