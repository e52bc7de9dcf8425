#!/bin/sh
# Builds ckpt and runs every test (unit and end-to-end). Needs root (ptrace, clone3 set_tid).
set -eu
cd "$(dirname "$0")/.."
tools/build.sh
cd build
ctest --output-on-failure --timeout 300 "$@"
