#!/usr/bin/env python
"""Build benchmark: time from `git commit` (with the shipped post-commit hook) to the signed image
being pullable, for a two-step Dockerfile (FROM a pushed busybox image + one RUN), on a private hub
(gunicorn + a Celery worker on the embedded SQLite/filesystem-broker defaults). Target: < 30 s.
Prints figures; asserts nothing.

    .venv/bin/python bench/builds.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.e2e.images import TestImages  # noqa: E402
from tests.live import build_worker_environment, free_port, wait_until  # noqa: E402

PY = Path(sys.executable)
USER, PASSWORD = "benchuser", "bench-password-123"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="wharf-bench-builds-"))
    port = free_port()
    sources = root / "sources"
    sources.mkdir()
    env = {**os.environ, "HUB_DATA_DIR": str(root / "data"), "PORT": str(port),
           "HUB_PUBLIC_URL": f"http://127.0.0.1:{port}", "HUB_ACCESS_LOG": "", "DJANGO_SETTINGS_MODULE": "hub.settings",
           "HUB_BUILDS_ENABLED": "1", "HUB_BUILD_LOCAL_ROOTS": str(sources), "HUB_BUILD_DISPATCH_SECONDS": "2"}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    processes = []
    try:
        subprocess.run([str(PY), "manage.py", "migrate", "--noinput", "-v0"], cwd=REPO_ROOT, env=env, check=True)
        subprocess.run([str(PY), "manage.py", "collectstatic", "--noinput", "-v0"], cwd=REPO_ROOT, env=env, check=True)
        subprocess.run([str(PY), "manage.py", "shell", "-c",
                        f"from accounts.models import User, Namespace; from repositories.services import "
                        f"repository_create; u = User.objects.create_user('{USER}', '{USER}@example.com', "
                        f"'{PASSWORD}'); repository_create(namespace=Namespace.objects.get(user=u), name='app', "
                        f"user=u)"], cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        processes.append(subprocess.Popen([str(PY.parent / "gunicorn"), "--config", "gunicorn.conf.py"],
                                          cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                                          stderr=open(root / "gunicorn.log", "wb")))  # noqa: SIM115
        processes.append(subprocess.Popen(
            [str(PY.parent / "celery"), "-A", "hub", "worker", "-B", "-Q", "celery", "--concurrency", "2",
             "--schedule", str(root / "beat")], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=open(root / "celery.log", "wb")))  # noqa: SIM115
        processes.append(subprocess.Popen(  # the build worker, with none of the site's settings
            [str(PY.parent / "celery"), "-A", "builds.worker", "worker", "-Q", "builds", "--concurrency", "2"],
            cwd=REPO_ROOT, env=build_worker_environment(env), stdout=subprocess.DEVNULL,
            stderr=open(root / "build-worker.log", "wb")))  # noqa: SIM115
        url, host = f"http://127.0.0.1:{port}", f"127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{url}/healthz", timeout=2).ok, timeout=60, message="hub")
        images = TestImages(root / "images")
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}",
                        images.small.ref, f"docker://{host}/{USER}/base:v1"], check=True)
        session = requests.Session()
        token = session.post(f"{url}/v2/users/login", json={"username": USER, "password": PASSWORD}).json()["token"]
        session.headers["Authorization"] = f"Bearer {token}"
        source = sources / "app"
        subprocess.run(["git", "init", "-q", "-b", "main", str(source)], check=True)
        trigger = session.put(f"{url}/v2/repositories/{USER}/app/build-source/",
                              json={"url": str(source)}).json()["trigger_url"]
        shutil.copy(REPO_ROOT / "contrib" / "post-commit", source / ".git" / "hooks" / "post-commit")
        git = ["git", "-C", str(source), "-c", "user.name=bench", "-c", "user.email=b@example.com"]
        subprocess.run([*git, "config", "wharf.trigger-url", trigger], check=True)
        seconds = []
        for run in range(args.runs):
            (source / "Dockerfile").write_text(f"FROM {host}/{USER}/base:v1\nRUN echo run-{run}-{time.time()} > /r\n")
            subprocess.run([*git, "add", "Dockerfile"], check=True)
            started = time.monotonic()
            subprocess.run([*git, "commit", "-q", "-m", f"bench {run}"], check=True, stderr=subprocess.DEVNULL)

            def signed_and_pullable(run=run):
                builds = session.get(f"{url}/v2/repositories/{USER}/app/builds/").json()["results"]
                if len(builds) <= run or builds[0]["state"] != "success":
                    return None
                sig = builds[0]["digest"].replace(":", "-") + ".sig"
                for tag in ("latest", sig):
                    subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds",
                                    f"{USER}:{PASSWORD}", f"docker://{host}/{USER}/app:{tag}"], check=True,
                                   capture_output=True)
                return True

            wait_until(signed_and_pullable, timeout=300, interval=0.25, message="the signed image")
            seconds.append(time.monotonic() - started)
            print(f"run {run + 1}: commit → signed image pullable in {seconds[-1]:.1f} s", flush=True)
        print(f"median {statistics.median(seconds):.1f} s, best {min(seconds):.1f} s over {len(seconds)} runs "
              f"(target < 30 s)")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
