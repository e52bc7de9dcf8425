#!/usr/bin/env python3
"""repeat.py - many dumps of one process, and a chain of dump/restore generations.

Races in freezing (threads created or exiting while ckpt seizes them, a thread caught in
any phase of its life) show up only when a dump is repeated many times. For one zt_PROG:
  1. DUMPS dumps with --leave-running, each into a fresh directory: every one must
     succeed, and the program must still be running, untraced, afterwards;
  2. GENERATIONS times: a default dump (the process is killed), then
     `ckpt restore --detach`: the restored process is the next generation, which is
     dumped again;
  3. SIGTERM to the last generation: it must pass its own self-check (exit 0, PASS).
Usage: repeat.py --ckpt CKPT --bindir DIR PROG [--dumps N] [--generations N]
"""

import argparse
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztlib  # noqa: E402
from ztlib import TestFailure, log  # noqa: E402

CMD_TIMEOUT = 60


def run(args):
    deadline = ztlib.Deadline(args.timeout)
    tmp = ztlib.make_tmpdir("repeat-" + args.prog)
    ckpt = ztlib.Ckpt(args.ckpt, tmp)
    work = os.path.join(tmp, "work")
    os.makedirs(work)
    prog = ztlib.Program(args.prog, args.bindir, work)
    prog.wait_ready(deadline.timeout(30))
    pid = prog.pid
    n = 0

    def fresh_dir():
        nonlocal n
        n += 1
        d = os.path.join(tmp, "img-%03d" % n)
        os.makedirs(d)
        return d

    for i in range(args.dumps):
        img = fresh_dir()
        res = ckpt.run(["dump", "--pid", pid, "-o", img, "--leave-running"], "dump-%d" % i,
                       deadline.timeout(CMD_TIMEOUT))
        if res.timed_out or res.rc != 0:
            raise TestFailure("--leave-running dump %d of %d failed: %s" % (i + 1, args.dumps, res.describe()))
        bad = ztlib.traced_or_stopped(pid)
        if bad or not ztlib.pid_running(pid):
            raise TestFailure("after --leave-running dump %d the process %s" % (i + 1, bad or "is gone"))
        ztlib.remove_tree(img)
    log("  %d --leave-running dumps succeeded" % args.dumps)

    for g in range(args.generations):
        img = fresh_dir()
        res = ckpt.run(["dump", "--pid", pid, "-o", img], "gen-dump-%d" % g, deadline.timeout(CMD_TIMEOUT))
        if res.timed_out or res.rc != 0:
            raise TestFailure("dump of generation %d failed: %s" % (g, res.describe()))
        if g == 0:
            prog.proc.wait(timeout=deadline.timeout(20))
        elif ztlib.wait_pid_exit(pid, deadline.timeout(20)) is None:
            raise TestFailure("generation %d still alive after its dump" % g)
        res = ckpt.run(["restore", "-D", img, "--detach"], "gen-restore-%d" % g, deadline.timeout(CMD_TIMEOUT))
        if res.timed_out or res.rc != 0:
            raise TestFailure("restore of generation %d failed: %s" % (g, res.describe()))
        if not ztlib.pid_running(pid):
            raise TestFailure("generation %d is not running after its restore" % (g + 1))
        ztlib.remove_tree(img)
    log("  %d dump/restore generations succeeded" % args.generations)

    time.sleep(0.2)  # let the last generation run a little before it is asked to check itself
    os.kill(pid, signal.SIGTERM)
    if args.generations == 0:
        status = prog.proc.wait(timeout=deadline.timeout(30))
        desc, ok = ztlib.describe_rc(status), status == 0
    else:
        status = ztlib.wait_pid_exit(pid, deadline.timeout(30))
        if status is None:
            raise TestFailure("the last generation did not exit after SIGTERM; output:\n%s" % ztlib.indent(prog.output()))
        desc, ok = ztlib.describe_status(status), os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    prog.check_result(desc, ok)
    return tmp


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ztlib.common_args(ap)
    ap.add_argument("prog")
    ap.add_argument("--dumps", type=int, default=50)
    ap.add_argument("--generations", type=int, default=20)
    args = ap.parse_args()
    args.ckpt = os.path.abspath(args.ckpt)
    args.bindir = os.path.abspath(args.bindir)
    ztlib.check_root_and_binary(args)
    ztlib.set_subreaper()
    ztlib.install_signal_handlers()
    t0 = time.monotonic()
    log("repeat %s: %d --leave-running dumps, %d generations" % (args.prog, args.dumps, args.generations))
    try:
        tmp = run(args)
    except TestFailure as e:
        log("FAIL repeat %s: %s" % (args.prog, e))
        ztlib.kill_descendants("repeat cleanup")
        return 1
    left = ztlib.kill_descendants("repeat cleanup")
    if left:
        log("FAIL repeat %s: processes left behind: %s" % (args.prog, left))
        return 1
    if not args.keep:
        ztlib.remove_tree(tmp)
    log("PASS repeat %s (%.2f s)" % (args.prog, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
