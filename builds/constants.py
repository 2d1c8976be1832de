"""Build states and other fixed values (RTD `readthedocs/builds/constants.py`)."""

from __future__ import annotations

QUEUED = "queued"
CLONING = "cloning"
BUILDING = "building"
PUSHING = "pushing"
SIGNING = "signing"
SUCCESS = "success"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"

STATES: tuple[tuple[str, str], ...] = (
    (QUEUED, "Queued"),
    (CLONING, "Cloning"),
    (BUILDING, "Building"),
    (PUSHING, "Pushing"),
    (SIGNING, "Signing"),
    (SUCCESS, "Success"),
    (FAILED, "Failed"),
    (CANCELLED, "Cancelled"),
    (TIMED_OUT, "Timed out"),
)
# A build in one of these states never changes again (it may be retried as a new build).
FINAL: frozenset[str] = frozenset({SUCCESS, FAILED, CANCELLED, TIMED_OUT})
# Holding a worker slot (counted against the per-namespace concurrency limit).
RUNNING: frozenset[str] = frozenset({CLONING, BUILDING, PUSHING, SIGNING})
ACTIVE: frozenset[str] = RUNNING | {QUEUED}

BRANCH = "branch"
TAG = "tag"
SOURCE_TYPES: tuple[tuple[str, str], ...] = ((BRANCH, "Branch"), (TAG, "Tag"))

SKIP_MARKERS: tuple[str, ...] = ("[skip build]", "[build skip]")

# How a build was started.
TRIGGER_GENERIC = "generic"
TRIGGER_GITHUB = "github"
TRIGGER_BITBUCKET = "bitbucket"
TRIGGER_MANUAL = "manual"
TRIGGER_RETRY = "retry"
TRIGGERS: tuple[tuple[str, str], ...] = (
    (TRIGGER_GENERIC, "Trigger URL"),
    (TRIGGER_GITHUB, "GitHub push"),
    (TRIGGER_BITBUCKET, "Bitbucket push"),
    (TRIGGER_MANUAL, "Started by hand"),
    (TRIGGER_RETRY, "Retry"),
)

# The build worker (builds/worker.py) consumes this queue; the hub sends it this task by name.
WORKER_QUEUE = "builds"
WORKER_RUN_TASK = "builds.worker.run_build"
# The runner enforces HUB_BUILD_TIMEOUT_SECONDS itself; Celery's limits catch a runner that hangs.
SOFT_MARGIN_SECONDS = 120
HARD_MARGIN_SECONDS = 300
