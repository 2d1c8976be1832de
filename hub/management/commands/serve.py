"""Run the whole site in the foreground: gunicorn and one Celery worker with beat (and, when builds
are on, the build worker, started with none of the site's settings or secrets in its environment).

A child that dies is restarted with backoff (logged on stderr); Ctrl-C, SIGTERM, or a TERM to the
whole process group stops them all within 10 seconds, and serve exits 0 (hub/supervise.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from builds.services import build_worker_environment
from hub.supervise import Child, Supervisor

BIN = Path(sys.executable).parent


class Command(BaseCommand):
    help = "Serve the site with gunicorn and run a Celery worker with beat (the embedded setup)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-worker", action="store_true", help="Run gunicorn only.")
        parser.add_argument("--no-beat", action="store_true", help="Run the worker without beat.")

    def handle(self, *args, **options) -> None:
        base = Path(settings.BASE_DIR)
        env = {**os.environ, "HUB_DATA_DIR": str(settings.DATA_DIR)}
        # A TERM reaches Celery's pool processes and beat too when sent to the whole process group (systemd,
        # container runtimes): remapped, they ignore it and the worker stops them itself (a cold shutdown
        # after CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT). A pool process killed by that TERM could die holding
        # the pool's queue lock, and the worker then never exited.
        celery_env = {"REMAP_SIGTERM": "SIGQUIT"}
        children = [Child("gunicorn", [str(BIN / "gunicorn"), "--config", str(base / "gunicorn.conf.py")], env)]
        if not options["no_worker"]:
            worker = [str(BIN / "celery"), "-A", "hub", "worker", "-Q", "celery", "-n", "hub@%h",
                      "--loglevel", "INFO", "--concurrency", os.environ.get("HUB_WORKER_CONCURRENCY", "2")]
            if not options["no_beat"]:
                worker += ["-B", "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME]
            children.append(Child("celery worker", worker, {**env, **celery_env}))
            if settings.HUB_BUILDS_ENABLED:
                children.append(Child(
                    "build worker",
                    [str(BIN / "celery"), "-A", "builds.worker", "worker", "-Q", "builds",
                     "-n", "builds@%h", "--loglevel", "INFO",
                     "--concurrency", os.environ.get("HUB_BUILD_WORKER_CONCURRENCY", "2")],
                    {**build_worker_environment(), **celery_env},
                ))
        self.stdout.write(f"Wharf at {settings.HUB_PUBLIC_URL} (data in {settings.DATA_DIR})")
        self.stdout.flush()
        status = Supervisor(children, cwd=base).run()
        sys.stdout.flush()
        sys.stderr.flush()
        # Every child is gone: skip tearing down the interpreter and the loaded site, which took seconds
        # on a busy host, of the 10 s a stop may take.
        os._exit(status)
