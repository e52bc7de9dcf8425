#!/usr/bin/env python3
"""stopped.py - a process stopped by SIGSTOP stays stopped across a dump and a restore.

Starts zt_PROG (a zdtm program, tests/README.md), waits for READY, stops it with SIGSTOP
and waits until every thread is in state T. Then:

  restore mode: `ckpt dump`, the original must be killed; `ckpt restore -D IMG` in the
    foreground; the restored process must appear with every thread stopped (T) and
    untraced, and with the visible state of the original (maps, fds, masks, ...);
  leave-running mode: `ckpt dump --leave-running`; the original must still be stopped
    (every thread T), untraced, its visible state unchanged.

Then SIGCONT: every thread must run again; SIGTERM: the program must pass its own check
(exit code 0 and PASS; in restore mode, ckpt restore's exit code is the program's).
"""

import argparse
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztlib  # noqa: E402
from ztlib import TestFailure, log  # noqa: E402

STATE_TIMEOUT = 20


def thread_states(pid):
    """{tid: (state letter, TracerPid)} of every thread of pid."""
    out = {}
    for name in os.listdir("/proc/%d/task" % pid):
        try:
            st = ztlib.parse_status(ztlib.read_text("/proc/%d/task/%s/status" % (pid, name)))
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[int(name)] = (st.get("State", "?")[:1], st.get("TracerPid", "?"))
    return out


def stop_problem(pid, want_stopped):
    """None if every thread of pid is untraced and stopped (or running, if not want_stopped)."""
    if not ztlib.pid_running(pid):
        return "process %d is not running" % pid
    bad = []
    for tid, (state, tracer) in sorted(thread_states(pid).items()):
        if tracer != "0":
            bad.append("thread %d traced by %s" % (tid, tracer))
        elif (state == "T") != want_stopped:
            bad.append("thread %d in state %s" % (tid, state))
    if bad:
        return "process %d (expected %s): %s" % (pid, "stopped" if want_stopped else "running", ", ".join(bad))
    return None


def wait_for(what, check, timeout):
    end = time.monotonic() + timeout
    while True:
        problem = check()
        if problem is None:
            return
        if time.monotonic() >= end:
            raise TestFailure("%s not reached within %d s: %s" % (what, timeout, problem))
        time.sleep(0.02)


def run(args, tmp):
    work, img = os.path.join(tmp, "work"), os.path.join(tmp, "img")
    os.mkdir(work)
    os.mkdir(img)
    ckpt = ztlib.Ckpt(args.ckpt, tmp)
    deadline = ztlib.Deadline(args.timeout)
    prog = ztlib.Program(args.prog, args.bindir, work)
    pid = prog.pid
    restore = None
    try:
        prog.wait_ready(deadline.timeout(10))
        os.kill(pid, signal.SIGSTOP)
        wait_for("SIGSTOP taking effect", lambda: stop_problem(pid, True), deadline.timeout(STATE_TIMEOUT))
        before = ztlib.visible_state(pid)
        log("  zt_%s (pid %d) is stopped" % (args.prog, pid))

        dump = ["dump", "--pid", pid, "-o", img] + (["--leave-running"] if args.mode == "leave-running" else [])
        res = ckpt.run(dump, "dump", deadline.timeout(40))
        if res.timed_out or res.rc != 0:
            raise TestFailure("dump of a stopped process failed: " + res.describe())

        if args.mode == "leave-running":
            problem = stop_problem(pid, True)
            if problem:
                raise TestFailure("after a --leave-running dump: " + problem)
            problems = ztlib.compare_state(before, ztlib.visible_state(pid), False)
            if problems:
                raise TestFailure("the dump changed the stopped process:\n  " + ztlib.state_problems_text(problems))
            log("  still stopped, untraced, unchanged after the dump")
        else:
            try:
                prog.proc.wait(timeout=deadline.timeout(10))
            except subprocess.TimeoutExpired:
                raise TestFailure("the original is still alive after `ckpt dump` (it must be killed)")
            restore = ckpt.start(["restore", "-D", img], "restore")

            def restored_and_stopped():
                if restore[0].poll() is not None:
                    r = ztlib.Ckpt.finish(restore, 1)
                    raise TestFailure("ckpt restore exited while the process should be stopped: " + r.describe())
                if not ztlib.pid_exists(pid):
                    return "process %d does not exist yet" % pid
                problem = stop_problem(pid, True)
                if problem:
                    return problem
                diff = ztlib.compare_state(before, ztlib.visible_state(pid), True)
                return ("visible state differs:\n  " + ztlib.state_problems_text(diff)) if diff else None

            wait_for("a restored, stopped process", restored_and_stopped, deadline.timeout(STATE_TIMEOUT))
            log("  restored: stopped, untraced, visible state matches")

        os.kill(pid, signal.SIGCONT)
        wait_for("SIGCONT taking effect", lambda: stop_problem(pid, False), deadline.timeout(STATE_TIMEOUT))
        os.kill(pid, signal.SIGTERM)
        if restore is not None:
            res = ztlib.Ckpt.finish(restore, deadline.timeout(20))
            restore = None
            if res.timed_out:
                raise TestFailure("ckpt restore did not finish after SIGTERM: " + res.describe())
            prog.check_result("ckpt restore " + ztlib.describe_rc(res.rc), res.rc == 0)
        else:
            try:
                rc = prog.proc.wait(timeout=deadline.timeout(20))
            except subprocess.TimeoutExpired:
                raise TestFailure("process %d did not exit after SIGTERM" % pid)
            prog.check_result(ztlib.describe_rc(rc), rc == 0)
    finally:
        if restore is not None and restore[0].poll() is None:
            restore[0].kill()
            restore[0].wait()
        if prog.proc.poll() is None:
            prog.proc.kill()
            prog.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ztlib.common_args(ap)
    ap.add_argument("--mode", choices=("restore", "leave-running"), required=True)
    ap.add_argument("prog", help="zdtm program to stop (zt_PROG)")
    args = ap.parse_args()
    args.bindir = os.path.abspath(args.bindir)
    args.ckpt = os.path.abspath(args.ckpt)
    ztlib.check_root_and_binary(args)
    ztlib.set_subreaper()
    ztlib.install_signal_handlers()
    tag = "stopped/%s/%s" % (args.prog, args.mode)
    tmp = ztlib.make_tmpdir(tag)
    err = None
    try:
        run(args, tmp)
    except TestFailure as e:
        err = str(e)
    except BaseException as e:
        err = "harness error: %r" % (e,)
    killed = ztlib.kill_descendants("test %s" % ("passed" if err is None else "failed"))
    if err is None and killed:
        err = "processes were left behind: %s" % killed
    if err is None:
        if not args.keep:
            ztlib.remove_tree(tmp)
        log("PASS %s" % tag)
        return 0
    log("FAIL %s: %s" % (tag, err))
    log("  kept for inspection: %s" % tmp)
    return 1


if __name__ == "__main__":
    sys.exit(main())
