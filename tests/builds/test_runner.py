"""The runner without Celery: a real git checkout and a fake `buildah` (a shell script) that records
its process ids, so cancel and timeout can be checked to kill the whole process group."""

import itertools
import os
import subprocess
import time
from pathlib import Path

from builds import constants
from builds.executor import BuildJob
from builds.runner import MAX_LINE_BYTES, LocalRunner, Unconfined

FAKE_BUILDAH = """#!/bin/sh
echo "$*" >> "{record}/calls"
for arg in "$@"; do
  case "$prev" in --digestfile) digestfile=$arg ;; --root) ws=${arg%/storage/root} ;; esac
  prev=$arg
done
case " $* " in
  *" bud "*)
    ls -A "$ws" > "{record}/workspace-during-bud"
    echo "STEP 1/2: FROM base"
    echo "args: $*" > "{record}/bud-args"
    sleep {sleep} & echo $! >> "{record}/pids"
    echo $$ >> "{record}/pids"
    wait ;;
  *" push "*)
    ls -A "$ws" > "{record}/workspace-during-push"
    printf 'sha256:%064d' 1 > "$digestfile" ;;
esac
"""


class Reporter:
    def __init__(self, cancel_after: float | None = None):
        self.lines, self.states = [], []
        self.cancel_at = time.monotonic() + cancel_after if cancel_after is not None else None

    def log(self, line):
        self.lines.append(line)

    def state(self, state):
        self.states.append(state)

    def cancelled(self):
        return self.cancel_at is not None and time.monotonic() > self.cancel_at


def fake_buildah(tmp_path: Path, sleep: int) -> tuple[Path, Path]:
    record = tmp_path / "record"
    record.mkdir()
    script = tmp_path / "buildah"
    script.write_text(FAKE_BUILDAH.replace("{record}", str(record)).replace("{sleep}", str(sleep)))
    script.chmod(0o755)
    return script, record


def job(source, commit: str, **overrides) -> BuildJob:
    values = {"build_id": 1, "source_url": str(source), "is_local": True, "commit": commit,
              "ref": "refs/heads/main", "message": "", "dockerfile": "Dockerfile", "context": ".",
              "build_args": {"A": "1"}, "secrets": {"tok": "very-secret"}, "registry": "127.0.0.1:1",
              "public_host": "hub.example:443", "repository": "alice/app", "tag": "latest", "username": "alice",
              "password": "whf_pat_pw", "timeout": 60}
    return BuildJob(**{**values, **overrides})


def sign_stub(digest: str, commit: str) -> tuple[str, str]:
    return "sig", "sha256:s"


def run_fake_build(tmp_path: Path, build_job: BuildJob, sign=sign_stub):
    """One build through the fake buildah (no sleep) with a fresh Reporter: the outcome and the record folder."""
    buildah, record = fake_buildah(tmp_path, sleep=0)
    runner = LocalRunner(buildah=str(buildah), work_root=tmp_path / "work", confine=False)
    return runner.execute(build_job, Reporter(), sign), record


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_success_fetches_builds_pushes_and_signs(tmp_path, source):
    repo, commit = source
    signed = []
    outcome, record = run_fake_build(tmp_path, job(repo, commit),
                                     sign=lambda digest, c: signed.append((digest, c)) or ("sig", "sha256:s"))
    assert outcome.state == constants.SUCCESS, outcome
    assert outcome.digest == "sha256:" + "0" * 63 + "1" and signed == [(outcome.digest, commit)]
    args = (record / "bud-args").read_text()
    assert "--build-arg A=1" in args and "--secret id=tok,src=" in args and "very-secret" not in args
    assert "--isolation chroot" in args and "--storage-driver vfs" in args
    assert list((tmp_path / "work").iterdir()) == []  # the workspace is gone


def test_missing_buildah_fails_fast(tmp_path, source):
    repo, commit = source
    reporter = Reporter()
    outcome = LocalRunner(buildah="/nonexistent/buildah").execute(job(repo, commit), reporter, None)
    assert outcome.state == constants.FAILED and "apt-get install" in outcome.error
    assert reporter.states == []


def test_cancel_kills_the_process_group(tmp_path, source):
    repo, commit = source
    buildah, record = fake_buildah(tmp_path, sleep=300)
    started = time.monotonic()
    outcome = LocalRunner(buildah=str(buildah), work_root=tmp_path / "work", confine=False).execute(
        job(repo, commit), Reporter(cancel_after=3), None)
    assert outcome.state == constants.CANCELLED
    assert time.monotonic() - started < 20
    pids = [int(p) for p in (record / "pids").read_text().split()]
    assert len(pids) == 2 and not any(alive(pid) for pid in pids)
    assert list((tmp_path / "work").iterdir()) == []


def test_timeout_is_enforced(tmp_path, source):
    repo, commit = source
    buildah, record = fake_buildah(tmp_path, sleep=300)
    outcome = LocalRunner(buildah=str(buildah), work_root=tmp_path / "work", confine=False).execute(
        job(repo, commit, timeout=3), Reporter(), None)
    assert outcome.state == constants.TIMED_OUT and "timed out" in outcome.error
    assert not any(alive(int(pid)) for pid in (record / "pids").read_text().split())


def test_a_moved_branch_is_not_built_from_a_short_sha(tmp_path, source):
    repo, _ = source
    buildah, _ = fake_buildah(tmp_path, sleep=0)
    outcome = LocalRunner(buildah=str(buildah), confine=False).execute(job(repo, "deadbee"), Reporter(), None)
    assert outcome.state == constants.FAILED and "not at the commit" in outcome.error


def test_dockerfile_outside_the_checkout_is_refused(tmp_path, source):
    repo, commit = source
    buildah, _ = fake_buildah(tmp_path, sleep=0)
    outcome = LocalRunner(buildah=str(buildah), confine=False).execute(job(repo, commit, dockerfile="../../etc/passwd"),
                                                        Reporter(), None)
    assert outcome.state == constants.FAILED and "outside the repository" in outcome.error


def test_the_log_stops_at_its_size_limit(tmp_path, source):
    repo, commit = source
    buildah = tmp_path / "buildah"
    buildah.write_text('#!/bin/sh\ncase " $* " in *" bud "*) i=0; while [ $i -lt 500 ]; do echo "line $i of noise"; '
                       'i=$((i+1)); done ;; *" push "*) for a; do [ "$p" = --digestfile ] && printf "sha256:%064d" 1 '
                       '> "$a"; p=$a; done ;; esac\n')
    buildah.chmod(0o755)
    reporter = Reporter()
    outcome = LocalRunner(buildah=str(buildah), work_root=tmp_path / "work", confine=False, log_limit=2000).execute(
        job(repo, commit), reporter, lambda digest, c: ("sig", "sha256:s"))
    assert outcome.state == constants.SUCCESS, outcome
    noise = [line for line in reporter.lines if "of noise" in line]
    assert 0 < len(noise) < 200 and "line 499 of noise" not in reporter.lines
    assert any("the log reached its limit of 2,000 bytes" in line for line in reporter.lines)


def test_a_line_without_end_is_cut_not_held_whole(tmp_path, source):
    """A RUN step printing without newlines (`head -c 20G /dev/zero`) must not make the worker hold it as one
    line: the output is read in bounded pieces and an overlong line is cut."""
    repo, commit = source
    buildah = tmp_path / "buildah"
    buildah.write_text('#!/bin/sh\ncase " $* " in *" bud "*) head -c 1048576 /dev/zero | tr "\\0" x; echo; '
                       'echo after ;; *" push "*) for a; do [ "$p" = --digestfile ] && printf "sha256:%064d" 1 '
                       '> "$a"; p=$a; done ;; esac\n')
    buildah.chmod(0o755)
    reporter = Reporter()
    outcome = LocalRunner(buildah=str(buildah), work_root=tmp_path / "work", confine=False).execute(
        job(repo, commit), reporter, lambda digest, c: ("sig", "sha256:s"))
    assert outcome.state == constants.SUCCESS, outcome
    long_lines = [line for line in reporter.lines if line.startswith("xxx")]
    assert len(long_lines) == 1 and len(long_lines[0]) <= MAX_LINE_BYTES + 100 and "cut" in long_lines[0]
    assert "after" in reporter.lines


def test_captured_output_is_bounded(tmp_path, source):
    """A step whose output is kept (git's, from a hostile server's `remote:` lines) keeps at most the log limit."""
    repo, commit = source
    runner = LocalRunner(work_root=tmp_path / "work", confine=False, log_limit=10_000)
    runner.job, runner.reporter, runner.masks = job(repo, commit), Reporter(), ()
    runner.deadline, runner.sandbox = time.monotonic() + 60, Unconfined()
    output = runner._run(["sh", "-c", "i=0; while [ $i -lt 5000 ]; do echo remote: noise $i; i=$((i+1)); done"],
                         cwd=tmp_path, what="noise", env=dict(os.environ), mounts=[], network=True, capture=True)
    assert output.startswith("remote: noise 0") and len(output) <= 10_000 + MAX_LINE_BYTES


def commit_to(repo: Path, files: dict[str, str], message: str = "two") -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-F", "-"], input=message.encode(), check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def test_a_huge_dockerfile_is_refused_not_read_whole(tmp_path, source):
    """The worker reads the Dockerfile itself (for its base images), outside the build's memory limit."""
    repo, _ = source
    commit = commit_to(repo, {"Dockerfile": "FROM scratch\n" + "# padding\n" * 200_000})
    outcome, _ = run_fake_build(tmp_path, job(repo, commit))
    assert outcome.state == constants.FAILED and "larger than" in outcome.error


def test_a_long_commit_message_still_builds(tmp_path, source):
    """COMMIT_MSG goes to buildah as one argument, which the kernel caps at 128 KiB."""
    repo, _ = source
    commit = commit_to(repo, {"Dockerfile": "FROM scratch\nARG COMMIT_MSG\n"},
                       message="subject\n\n" + "body line of a long message\n" * 10_000)
    outcome, record = run_fake_build(tmp_path, job(repo, commit))
    assert outcome.state == constants.SUCCESS, outcome
    assert "COMMIT_MSG=subject" in (record / "bud-args").read_text()


def test_the_log_stops_at_its_line_limit(tmp_path, source):
    """Empty lines cost one byte each against the byte limit but a whole entry each in the live log (Redis)."""
    repo, commit = source
    buildah = tmp_path / "buildah"
    buildah.write_text('#!/bin/sh\ncase " $* " in *" bud "*) yes "" | head -n 30000 ;; *" push "*) for a; do '
                       '[ "$p" = --digestfile ] && printf "sha256:%064d" 1 > "$a"; p=$a; done ;; esac\n')
    buildah.chmod(0o755)
    reporter = Reporter()
    runner = LocalRunner(buildah=str(buildah), work_root=tmp_path / "work", confine=False, log_line_limit=1000)
    outcome = runner.execute(job(repo, commit), reporter, lambda digest, c: ("sig", "sha256:s"))
    assert outcome.state == constants.SUCCESS, outcome
    assert reporter.lines.count("") <= 1000
    assert any("1,000 lines" in line for line in reporter.lines)


def test_a_base_image_on_a_loopback_registry_is_refused_before_any_pull(tmp_path, source):
    repo, _ = source
    commit = commit_to(repo, {"Dockerfile": "FROM 127.0.0.1:5432/postgres/x\nRUN true\n"})
    outcome, record = run_fake_build(tmp_path, job(repo, commit), sign=None)
    assert outcome.state == constants.FAILED and "refused to pull 127.0.0.1:5432/postgres/x" in outcome.error
    assert not (record / "calls").exists() or " pull " not in (record / "calls").read_text()


def test_a_hub_image_named_by_the_public_host_is_pulled_from_the_internal_registry(tmp_path, source):
    repo, _ = source
    commit = commit_to(repo, {"Dockerfile": "FROM hub.example:443/alice/base:v1\nRUN true\n"})
    outcome, record = run_fake_build(tmp_path, job(repo, commit))
    assert outcome.state == constants.SUCCESS, outcome
    calls = (record / "calls").read_text().splitlines()
    pulls = [call for call in calls if " pull " in call]
    assert len(pulls) == 1 and pulls[0].endswith("-- 127.0.0.1:1/alice/base:v1") and "--tls-verify=false" in pulls[0]
    assert any(call.endswith(" tag 127.0.0.1:1/alice/base:v1 hub.example:443/alice/base:v1") for call in calls)


def test_the_registry_credential_is_on_disk_during_the_push_only(tmp_path, source):
    repo, commit = source
    outcome, record = run_fake_build(tmp_path, job(repo, commit))
    assert outcome.state == constants.SUCCESS, outcome
    assert "cred" not in (record / "workspace-during-bud").read_text().split()
    assert "cred" in (record / "workspace-during-push").read_text().split()


def test_a_local_source_is_fetched_with_no_network(tmp_path, source, monkeypatch):
    """A local source's fetch runs as the worker's uid (capabilities dropped): it gets no network at all."""
    repo, commit = source
    steps = []
    command = Unconfined.command

    def recording(self, argv, **options):
        steps.append((Path(argv[0]).name, options))
        return command(self, argv, **options)

    monkeypatch.setattr(Unconfined, "command", recording)
    outcome, _ = run_fake_build(tmp_path, job(repo, commit))
    assert outcome.state == constants.SUCCESS, outcome
    fetches = [options for name, options in steps if name == "git"]
    assert len(fetches) >= 3 and all(options["network"] is False and options["user_namespace"] is False
                                     for options in fetches), steps


def test_only_the_built_in_args_the_dockerfile_declares_are_passed(tmp_path, source):
    repo, _ = source
    commit = commit_to(repo, {"Dockerfile": "ARG SOURCE_BRANCH\nFROM scratch\nARG SOURCE_COMMIT DOCKER_TAG=x\n"})
    outcome, record = run_fake_build(tmp_path, job(repo, commit))
    assert outcome.state == constants.SUCCESS, outcome
    words = (record / "bud-args").read_text().split()
    passed = sorted(value.partition("=")[0] for flag, value in itertools.pairwise(words)
                    if flag == "--build-arg")
    assert passed == ["A", "DOCKER_TAG", "SOURCE_BRANCH", "SOURCE_COMMIT"]  # the rule's own A always; no COMMIT_MSG
