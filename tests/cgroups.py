#!/usr/bin/env python3
"""cgroups.py - cgroup membership survives a dump and a restore, or the restore refuses.

Each case is its own ctest test (cgroups/CASE). The test makes fresh cgroups
(ckpt-test-RANDOM) in the cgroup v1 `pids` hierarchy and in the cgroup v2 hierarchy, each
where this machine has it mounted and lets a process be moved there, and moves the
program into them (its pid into cgroup.procs). Cases:

  restore        zt_counter in the test cgroups; `ckpt dump` (kills it), `ckpt restore`:
                 the restored process must be in the same cgroups (/proc/PID/cgroup) and,
                 after SIGTERM, pass its own check;
  removed        as restore, but the cgroups are removed between dump and restore: the
                 restore must be refused with one `ckpt: error:` line naming the cgroup,
                 and leave no process behind;
  leave-running  `ckpt dump --leave-running`: the program's cgroups are unchanged, and it
                 passes its check;
  thread         zt_threads_mutex, one of its threads alone in a cgroup (v1 `tasks`, or a
                 v2 threaded cgroup): the dump is refused with one line, the program runs
                 on unchanged and passes its check;
  threaded-process  zt_threads_mutex with all its threads in a cgroup v2 threaded cgroup
                 (whose cgroup.procs restore could not write): the dump is refused the same way.

The cgroups are removed at the end, pass or fail (after the processes in them are gone).
Exit code: 0 pass, 1 fail, 77 skipped (no cgroup hierarchy here lets the test move a
process; for `thread`, none allows a thread its own cgroup; for `threaded-process`, no
cgroup v2 with threaded mode).
"""

import argparse
import errno
import os
import random
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztlib  # noqa: E402
from ztlib import TestFailure, log  # noqa: E402

SKIP = 77
CMD_TIMEOUT = 40
CASES = ("restore", "removed", "leave-running", "thread", "threaded-process")


class Skip(Exception):
    pass


def unescape(s):
    out, i = "", 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1:i + 4].isdigit():
            out += chr(int(s[i + 1:i + 4], 8))
            i += 4
        else:
            out += s[i]
            i += 1
    return out


def cgroup_mounts():
    """{"v1": mount point of the pids hierarchy, "v2": of cgroup2}, where mounted at the root."""
    found = {}
    for line in ztlib.read_text("/proc/self/mountinfo").splitlines():
        f = line.split(" ")
        dash = f.index("-")
        fstype, opts = f[dash + 1], f[dash + 3].split(",")
        if f[3] != "/":
            continue
        if fstype == "cgroup" and "pids" in opts:
            found.setdefault("v1", unescape(f[4]))
        elif fstype == "cgroup2":
            found.setdefault("v2", unescape(f[4]))
    return found


def cgroup_lines(path):
    """{hierarchy key: path} of a /proc/.../cgroup file; key "0" for v2, else the controllers."""
    out = {}
    for line in ztlib.read_text(path).splitlines():
        ident, controllers, cg = line.split(":", 2)
        out["v2" if ident == "0" else controllers] = cg
    return out


def key_of(kind):
    return "v2" if kind == "v2" else "pids"


def write(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class Cgroups:
    """The test's cgroup directories; removed (deepest first) by cleanup()."""

    def __init__(self):
        self.dirs = []  # in creation order
        self.name = "ckpt-test-%d-%08x" % (os.getpid(), random.getrandbits(32))

    def make(self, parent, *sub):
        path = os.path.join(parent, self.name, *sub)
        os.mkdir(path)
        self.dirs.append(path)
        return path

    def remove(self, path):
        """rmdir, waiting while the kernel still counts exiting processes in it."""
        end = time.monotonic() + 20
        while True:
            try:
                os.rmdir(path)
                return None
            except FileNotFoundError:
                return None
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() >= end:
                    return "cannot remove cgroup %s: %s" % (path, e)
                time.sleep(0.05)

    def cleanup(self):
        problems = [p for p in (self.remove(d) for d in reversed(self.dirs)) if p]
        self.dirs = []
        return problems


def move_into_cgroups(cgs, pid):
    """Moves pid into a fresh cgroup of every usable hierarchy; {kind: path in /proc/PID/cgroup}."""
    moved = {}
    for kind, mount in sorted(cgroup_mounts().items()):
        try:
            d = cgs.make(mount)
            write(os.path.join(d, "cgroup.procs"), str(pid))
        except OSError as e:
            log("  %s hierarchy at %s cannot be used here: %s" % (kind, mount, e))
            continue
        path = cgroup_lines("/proc/%d/cgroup" % pid).get(key_of(kind))
        if path is None or not path.endswith("/" + cgs.name):
            raise TestFailure("moved pid %d into %s, but /proc/%d/cgroup shows %s" % (pid, d, pid, path))
        moved[kind] = path
        log("  zt (pid %d) is in %s cgroup %s" % (pid, kind, path))
    if not moved:
        raise Skip("no cgroup hierarchy here lets the test create a cgroup and move a process into it")
    return moved


def wait_released(ckpt_started, pid, deadline):
    """Until the restored pid exists and is no longer traced by ckpt restore."""
    end = time.monotonic() + deadline
    while True:
        if ckpt_started[0].poll() is not None:
            res = ztlib.Ckpt.finish(ckpt_started, 1)
            raise TestFailure("ckpt restore exited before the process was released: " + res.describe())
        try:
            if ztlib.proc_status(pid).get("TracerPid") == "0":
                return
        except (FileNotFoundError, ProcessLookupError):
            pass
        if time.monotonic() >= end:
            raise TestFailure("restored pid %d not released within %d s" % (pid, deadline))
        time.sleep(0.02)


def check_cgroups(pid, want, what):
    have = cgroup_lines("/proc/%d/cgroup" % pid)
    bad = ["%s: %s (expected %s)" % (k, have.get(key_of(k)), p) for k, p in sorted(want.items())
           if have.get(key_of(k)) != p]
    if bad:
        raise TestFailure("%s: pid %d is in the wrong cgroups: %s" % (what, pid, ", ".join(bad)))


def finish_program(prog, deadline, restore=None):
    """SIGTERM, then the program's own check (via ckpt restore's exit code if restored)."""
    os.kill(prog.pid, signal.SIGTERM)
    if restore is not None:
        res = ztlib.Ckpt.finish(restore, deadline.timeout(20))
        if res.timed_out:
            raise TestFailure("ckpt restore did not finish after SIGTERM: " + res.describe())
        prog.check_result("ckpt restore " + ztlib.describe_rc(res.rc), res.rc == 0)
    else:
        try:
            rc = prog.proc.wait(timeout=deadline.timeout(20))
        except subprocess.TimeoutExpired:
            raise TestFailure("process %d did not exit after SIGTERM" % prog.pid)
        prog.check_result(ztlib.describe_rc(rc), rc == 0)


def case_dump_restore(args, tmp, cgs, case):
    work, img = os.path.join(tmp, "work"), os.path.join(tmp, "img")
    os.mkdir(work)
    os.mkdir(img)
    ckpt = ztlib.Ckpt(args.ckpt, tmp)
    deadline = ztlib.Deadline(args.timeout)
    prog = ztlib.Program("counter", args.bindir, work)
    pid = prog.pid
    restore = None
    try:
        prog.wait_ready(deadline.timeout(10))
        want = move_into_cgroups(cgs, pid)
        dump = ["dump", "--pid", pid, "-o", img] + (["--leave-running"] if case == "leave-running" else [])
        res = ckpt.run(dump, "dump", deadline.timeout(CMD_TIMEOUT))
        if res.timed_out or res.rc != 0:
            raise TestFailure("dump failed: " + res.describe())
        info = ckpt.run(["info", img], "info", deadline.timeout(CMD_TIMEOUT))
        if info.rc != 0 or not all(p in info.out for p in want.values()):
            raise TestFailure("`ckpt info` does not show the cgroups %s:\n%s" % (sorted(want.values()), info.out))

        if case == "leave-running":
            if not ztlib.pid_running(pid):
                raise TestFailure("the program is gone after a --leave-running dump")
            check_cgroups(pid, want, "after a --leave-running dump")
            log("  still in its cgroups after the dump")
            finish_program(prog, deadline)
            return

        try:
            prog.proc.wait(timeout=deadline.timeout(10))
        except subprocess.TimeoutExpired:
            raise TestFailure("the original is still alive after `ckpt dump` (it must be killed)")

        if case == "removed":
            problems = cgs.cleanup()
            if problems:
                raise TestFailure("setup: " + "; ".join(problems))
            res = ckpt.run(["restore", "-D", img], "restore", deadline.timeout(CMD_TIMEOUT))
            ztlib.check_clean_error(res, "restore into removed cgroups")
            if cgs.name not in res.err or "cgroup" not in res.err:
                raise TestFailure("the error does not name the cgroup %s: %s" % (cgs.name, res.err.strip()))
            if ztlib.pid_exists(pid):
                raise TestFailure("a process %d was left behind by the refused restore" % pid)
            log("  refused: %s" % res.err.strip())
            return

        restore = ckpt.start(["restore", "-D", img], "restore")
        wait_released(restore, pid, deadline.timeout(CMD_TIMEOUT))
        check_cgroups(pid, want, "restored")
        log("  restored into the same cgroups")
        finish_program(prog, deadline, restore)
        restore = None
    finally:
        if restore is not None and restore[0].poll() is None:
            restore[0].kill()
            restore[0].wait()
        if prog.proc.poll() is None:
            prog.proc.kill()
            prog.proc.wait()


def isolate_thread(cgs, pid, tid):
    """Puts thread tid alone in a cgroup; returns a description, or None if no hierarchy allows it."""
    mounts = cgroup_mounts()
    if "v1" in mounts:
        try:
            d = cgs.make(mounts["v1"])
            write(os.path.join(d, "tasks"), str(tid))
            return "v1 pids cgroup %s" % d
        except OSError as e:
            log("  cgroup v1 pids cannot be used: %s" % e)
    if "v2" in mounts:
        try:
            d = cgs.make(mounts["v2"])
            t = cgs.make(mounts["v2"], "t")
            write(os.path.join(t, "cgroup.type"), "threaded")
            write(os.path.join(d, "cgroup.procs"), str(pid))
            write(os.path.join(t, "cgroup.threads"), str(tid))
            return "v2 threaded cgroup %s" % t
        except OSError as e:
            log("  cgroup v2 threaded mode cannot be used: %s" % e)
    return None


def threaded_process(cgs, pid, tids):
    """Puts every thread of pid into a v2 threaded cgroup; a description, or None if impossible."""
    mounts = cgroup_mounts()
    if "v2" not in mounts:
        return None
    try:
        d = cgs.make(mounts["v2"])
        t = cgs.make(mounts["v2"], "t")
        write(os.path.join(t, "cgroup.type"), "threaded")
        write(os.path.join(d, "cgroup.procs"), str(pid))
        for tid in [pid] + tids:
            write(os.path.join(t, "cgroup.threads"), str(tid))
        return "v2 threaded cgroup %s" % t
    except OSError as e:
        log("  cgroup v2 threaded mode cannot be used: %s" % e)
        return None


def case_thread(args, tmp, cgs, whole_process):
    work, img = os.path.join(tmp, "work"), os.path.join(tmp, "img")
    os.mkdir(work)
    os.mkdir(img)
    ckpt = ztlib.Ckpt(args.ckpt, tmp)
    deadline = ztlib.Deadline(args.timeout)
    prog = ztlib.Program("threads_mutex", args.bindir, work)
    pid = prog.pid
    try:
        prog.wait_ready(deadline.timeout(10))
        tids = sorted(int(t) for t in os.listdir("/proc/%d/task" % pid) if int(t) != pid)
        if not tids:
            raise TestFailure("zt_threads_mutex has no threads besides the main one")
        if whole_process:
            where = threaded_process(cgs, pid, tids)
            if where is None:
                raise Skip("no cgroup v2 hierarchy with threaded mode here")
            log("  every thread of pid %d is in %s" % (pid, where))
            expect = ["threaded cgroup", cgs.name]
        else:
            where = isolate_thread(cgs, pid, tids[0])
            if where is None:
                raise Skip("no cgroup hierarchy here gives a thread a cgroup of its own")
            log("  thread %d of pid %d is alone in %s" % (tids[0], pid, where))
            expect = ["thread %d" % tids[0], "cgroup"]
        before = ztlib.visible_state(pid)
        res = ckpt.run(["dump", "--pid", pid, "-o", img], "dump", deadline.timeout(CMD_TIMEOUT))
        ztlib.check_clean_error(res, "dump of threads in cgroups of their own")
        if not all(e in res.err for e in expect):
            raise TestFailure("the error does not name %s: %s" % (expect, res.err.strip()))
        log("  refused: %s" % res.err.strip())
        if not ztlib.pid_running(pid):
            raise TestFailure("the program is gone after the refused dump")
        problems = ztlib.compare_state(before, ztlib.visible_state(pid), False)
        if problems:
            raise TestFailure("the refused dump changed the program:\n  " + ztlib.state_problems_text(problems))
        finish_program(prog, deadline)
    finally:
        if prog.proc.poll() is None:
            prog.proc.kill()
            prog.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ztlib.common_args(ap)
    ap.add_argument("case", choices=CASES)
    args = ap.parse_args()
    args.bindir = os.path.abspath(args.bindir)
    args.ckpt = os.path.abspath(args.ckpt)
    ztlib.check_root_and_binary(args)
    ztlib.set_subreaper()
    ztlib.install_signal_handlers()
    tag = "cgroups/%s" % args.case
    tmp = ztlib.make_tmpdir("cgroups-" + args.case)
    cgs = Cgroups()
    err, skipped = None, None
    try:
        if args.case in ("thread", "threaded-process"):
            case_thread(args, tmp, cgs, args.case == "threaded-process")
        else:
            case_dump_restore(args, tmp, cgs, args.case)
    except Skip as e:
        skipped = str(e)
    except TestFailure as e:
        err = str(e)
    except BaseException as e:
        err = "harness error: %r" % (e,)
    killed = ztlib.kill_descendants("test %s" % ("passed" if err is None else "failed"))
    if err is None and killed:
        err = "processes were left behind: %s" % killed
    problems = cgs.cleanup()
    if err is None and problems:
        err = "; ".join(problems)
    if skipped and err is None:
        ztlib.remove_tree(tmp)
        log("SKIP %s: %s" % (tag, skipped))
        return SKIP
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
