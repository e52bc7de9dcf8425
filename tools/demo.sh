#!/bin/bash
# The main job: start a counting program whose output goes through a pipe into `cat` (a
# process tree: sh, the counter and cat), checkpoint it (which stops it), restore it, and
# show it counting on from where it was. Needs root.
set -eu
cd "$(dirname "$0")/.."
echo "== building ckpt into build/ (tools/build.sh; the first build takes a minute or two)"
(set -o pipefail; tools/build.sh 2>&1 | sed -u 's/^/   /')
CKPT=build/ckpt
WORK=$(mktemp -d /tmp/ckpt-demo.XXXXXX)
LOG=$WORK/counter.log

# The counter must not inherit descriptors ckpt cannot restore yet (pipes of a CI runner).
(
    for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        [ "$fd" -gt 2 ] && eval "exec $fd>&-"
    done
    exec setsid sh -c 'build/ckpt-demo-counter | cat' >"$LOG" 2>&1 </dev/null
) &
PID=$!
disown "$PID"  # its death by the dump is expected: no job report
sleep 2
echo "== sh -c 'ckpt-demo-counter | cat' (pid $PID) is running:"
tail -n 3 "$LOG"

echo "== ckpt dump --pid $PID -o $WORK/img   (the process is stopped after the dump)"
$CKPT dump --pid "$PID" -o "$WORK/img" --print-stats | sed 's/^/   /'
LAST=$(tail -n 1 "$LOG")
echo "== last line before the checkpoint: $LAST"
sleep 1
kill -0 "$PID" 2>/dev/null && { echo "demo: process still alive after dump" >&2; exit 1; }
echo "== the process is gone; the image:"
$CKPT info "$WORK/img" | head -n 6 | sed 's/^/   /'

echo "== ckpt restore -D $WORK/img --detach"
$CKPT restore -D "$WORK/img" --detach
sleep 2
echo "== the restored process (same pid $PID) goes on counting:"
grep -n -A 4 -x "$LAST" "$LOG" | sed 's/^/   /'
NEXT=$(grep -A 1 -x "$LAST" "$LOG" | tail -n 1)
kill -- "-$PID"  # the whole tree: it is its own process group
N_LAST=${LAST#count }
N_NEXT=${NEXT#count }
if [ "$N_NEXT" -eq $((N_LAST + 1)) ]; then
    echo "== demo OK: $LAST was followed by $NEXT after the restore"
    rm -rf "$WORK"
else
    echo "== demo FAILED: after '$LAST' came '$NEXT'" >&2
    exit 1
fi
