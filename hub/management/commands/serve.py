"""Run the whole site in the foreground: gunicorn and one Celery worker with beat (and, when builds
are on, the build worker, started with none of the site's settings or secrets in its environment).

Ctrl-C or SIGTERM stops both cleanly; if either exits, the other is stopped too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from builds.services import build_worker_environment

BIN = Path(sys.executable).parent


def _die_with_parent() -> None:
    """In the child: get SIGTERM if `serve` itself dies (even by SIGKILL), so no server outlives it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass


class Command(BaseCommand):
    help = "Serve the site with gunicorn and run a Celery worker with beat (the embedded setup)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-worker", action="store_true", help="Run gunicorn only.")
        parser.add_argument("--no-beat", action="store_true", help="Run the worker without beat.")

    def handle(self, *args, **options) -> None:
        base = Path(settings.BASE_DIR)
        env = {**os.environ, "HUB_DATA_DIR": str(settings.DATA_DIR)}
        commands = [[str(BIN / "gunicorn"), "--config", str(base / "gunicorn.conf.py")]]
        environments = [env]
        if not options["no_worker"]:
            worker = [str(BIN / "celery"), "-A", "hub", "worker", "-Q", "celery", "-n", "hub@%h",
                      "--loglevel", "INFO", "--concurrency", os.environ.get("HUB_WORKER_CONCURRENCY", "2")]
            if not options["no_beat"]:
                worker += ["-B", "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME]
            commands.append(worker)
            environments.append(env)
            if settings.HUB_BUILDS_ENABLED:
                commands.append([str(BIN / "celery"), "-A", "builds.worker", "worker", "-Q", "builds",
                                 "-n", "builds@%h", "--loglevel", "INFO",
                                 "--concurrency", os.environ.get("HUB_BUILD_WORKER_CONCURRENCY", "2")])
                environments.append(build_worker_environment())
        stopping = False

        def stop(signum, frame) -> None:
            nonlocal stopping
            stopping = True

        # Handlers first: a SIGTERM that arrives while the children start must still stop them.
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write(f"Wharf at {settings.HUB_PUBLIC_URL} (data in {settings.DATA_DIR})")
        self.stdout.flush()
        children: list[subprocess.Popen] = []
        try:
            for command, environment in zip(commands, environments, strict=True):
                if stopping:
                    break
                children.append(subprocess.Popen(command, cwd=base, env=environment, preexec_fn=_die_with_parent))
            while not stopping and all(child.poll() is None for child in children):
                time.sleep(0.2)
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
        failed = [child.returncode for child in children if child.returncode not in (0, -signal.SIGTERM)]
        if failed and not stopping:
            sys.exit(1)
