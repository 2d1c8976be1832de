#!/usr/bin/env bash
# Every Debian package the test suite (and the benchmark) needs, installed in one place.
# Run as root; `make test` calls it. Installs nothing when everything is already there.
set -euo pipefail
PACKAGES=(
  redis-server postgresql            # the real services the suite runs against
  skopeo podman buildah runc umoci   # real container clients
  busybox-static                     # the test images' only binary
  git curl jq ca-certificates        # hooks, raw HTTP checks
  openssh-server                     # ssh build sources: tests/builds run their own sshd
  bubblewrap uidmap e2fsprogs        # the build sandbox (builds/sandbox.py): bwrap, newuidmap, mkfs.ext4
  slirp4netns iptables               # ... and its optional public network for RUN steps
  gcc libc6-dev                      # tests/e2e/test_builds_sandbox.py compiles a static chroot escape
  chromium                           # the browser tests (driven by Playwright)
  wrk docker-registry                # bench/: load generator and the reference registry
  haproxy                            # tests/e2e/test_scaleout.py and bench/scaleout.py: the load balancer
)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
