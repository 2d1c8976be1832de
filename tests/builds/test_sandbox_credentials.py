"""The registry credential in the real sandbox: on disk only while the push (or a hub pull) runs, owned by
the build's own uid and readable by it alone; absent while `buildah bud` runs the Dockerfile's RUN steps."""

import os
import shutil
import stat

import pytest

from builds import constants
from builds.runner import LocalRunner
from builds.sandbox import Limits, sandbox_problem
from tests.builds.test_runner import Reporter, job

needs_sandbox = pytest.mark.skipif(shutil.which("bwrap") is None or shutil.which("buildah") is None,
                                   reason="bubblewrap and buildah are needed")


@needs_sandbox
def test_the_push_credential_exists_during_the_push_only_and_for_the_builder_alone(tmp_path, source, monkeypatch):
    assert sandbox_problem() is None
    repo, commit = source
    seen = {}
    run = LocalRunner._run

    def recording(self, argv, *, what, **options):
        folder = self.sandbox.workspace / "cred"
        files = {}
        if folder.exists():
            for path in (folder, *folder.iterdir()):
                info = os.lstat(path)
                files[path.name] = (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode))
        seen[what] = (self.sandbox.uid_base, files)
        return run(self, argv, what=what, **options)

    monkeypatch.setattr(LocalRunner, "_run", recording)
    outcome = LocalRunner(work_root=tmp_path / "work", limits=Limits(disk_bytes=200 << 20)).execute(
        job(repo, commit, registry="127.0.0.1:9", secrets={}), Reporter(), lambda digest, c: ("sig", "sha256:s"))
    assert outcome.state == constants.FAILED and "buildah push" in outcome.error, outcome  # nothing listens on :9
    assert seen["buildah bud"][1] == {}, seen  # no credential on disk while RUN steps run
    builder, files = seen["buildah push"]
    assert files == {"cred": (builder, builder, 0o700), "auth.json": (builder, builder, 0o600)}, seen
    assert builder >= 0x70000000  # the build's own id range, not the worker's uid
    assert not any(files for what, (_, files) in seen.items() if what.startswith("git")), seen
