#!/bin/sh
# Regenerates the /proc samples in this directory (run as root: it changes its uids, uses
# SCHED_FIFO and mlock). See record_samples.c; the synthetic samples (*_synthetic.txt) are
# written by hand and are not touched.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/dir with spaces"
cc -O0 -pthread -o "$work/record_samples" "$here/record_samples.c"
"$work/record_samples" "$here" "$work" | tee "$here/recorded.log"
chmod 644 "$here"/*.txt
