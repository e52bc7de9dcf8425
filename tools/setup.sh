#!/bin/sh
# Installs what ckpt needs to build and test on Debian 12. Idempotent; run as root.
set -eu
# The last line: runtimes the end-to-end tests dump (tests/real_programs.py skips a
# program whose runtime is missing).
PKGS="build-essential cmake pkg-config python3 libcli11-dev libfmt-dev libgtest-dev \
      libunwind-dev libxxhash-dev \
      ruby golang-go redis-server"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
else
    echo "setup: all build dependencies present"
fi
