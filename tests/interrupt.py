#!/usr/bin/env python3
"""interrupt.py - ckpt interrupted or killed at any moment of a dump leaves the target unharmed.

For a single-threaded target (zt_bigbuf) and a multi-threaded one with running
threads (zt_threads_bigbuf) (ctest faults/interrupt), or for process trees
(`--target tree_pipe --target tree_fork`, ctest faults/interrupt-tree: a parent and a
child with unread bytes in two pipes; two counting children with private memory), in
both modes (default: the target is killed once
the image is complete; --leave-running), and for each of SIGINT, SIGTERM, SIGHUP
and SIGKILL sent to ckpt after a range of delays that spans the whole dump
(seize, infection, page transfer, image write, commit; the range is derived
from a measured control dump):
  - if ckpt still succeeded (the signal came after the commit), the image must
    be complete (`ckpt info --verify` where available, else `ckpt info`);
  - otherwise the target must be alive, neither traced nor stopped, with its
    visible state unchanged (maps, fds, masks, ids), and so must every process of its
    tree, and the tree itself (ztlib.visible_state(pid, tree=True): the same pids,
    parents, groups, sessions); a SIGKILLed ckpt may have left the parasite's region
    in any one process of the tree (they are infected one after the other);
  - if a default-mode dump completed, the whole tree must be gone (killed) within 10 s;
    * SIGINT/SIGTERM/SIGHUP: exactly the line
      `ckpt: error: interrupted; process N left running`, exit code 1, and no
      partial file left in the image directory;
    * SIGKILL: the next dump into the same directory succeeds and leaves no
      partial file behind (it cleans up what the killed one left);
  - at the end, each target passes its own self-check after SIGTERM.
No timing is asserted: the delays only decide where in the dump the signal lands.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztlib  # noqa: E402
from ztlib import TestFailure, log  # noqa: E402

TARGETS = (("bigbuf", ["192"]), ("threads_bigbuf", ["192"]))
TREE_TARGETS = (("tree_pipe", []), ("tree_fork", []))
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL)
N_DELAYS = 7
CMD_TIMEOUT = 60


def partial_files(d):
    return sorted(f for f in os.listdir(d) if "partial" in f) if os.path.isdir(d) else []


class Run:
    def __init__(self, args):
        self.args = args
        self.deadline = ztlib.Deadline(args.timeout)
        self.tmp = ztlib.make_tmpdir("interrupt")
        self.ckpt = ztlib.Ckpt(args.ckpt, self.tmp)
        self.n = 0
        self.prog = None
        self.checked = 0

    def newdir(self, tag):
        self.n += 1
        d = os.path.join(self.tmp, "%03d-%s" % (self.n, tag))
        os.makedirs(d)
        return d

    def start_target(self, name, argv):
        self.prog = ztlib.Program(name, self.args.bindir, self.newdir("work-" + name), argv)
        self.prog.wait_ready(self.deadline.timeout(60))
        self.before = ztlib.visible_state(self.prog.pid, tree=True)
        if name in dict(TREE_TARGETS) and not self.before["tree"]:
            raise TestFailure("zt_%s has no descendant at READY: there is no tree to test" % name)

    def kill_target(self):
        """SIGKILL the target with its whole tree (its own process group) and reap them."""
        prog, self.prog = self.prog, None
        if prog is None:
            return
        pids = {prog.pid} | set(self.before.get("tree") or {})
        try:
            os.killpg(prog.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        prog.proc.wait()
        ztlib.wait_gone(pids, 5)

    def finish_target(self):
        prog, self.prog = self.prog, None
        os.kill(prog.pid, signal.SIGTERM)
        try:
            rc = prog.proc.wait(timeout=self.deadline.timeout(60))
        except subprocess.TimeoutExpired:
            raise TestFailure("zt_%s did not exit after SIGTERM; output:\n%s" % (prog.name, ztlib.indent(prog.output())))
        prog.check_result(ztlib.describe_rc(rc), rc == 0)

    def dump_args(self, img, leave_running):
        return ["dump", "--pid", self.prog.pid, "-o", img] + (["--leave-running"] if leave_running else [])

    def measure(self, name, argv):
        self.start_target(name, argv)
        img = self.newdir("control")
        t0 = time.monotonic()
        res = self.ckpt.run(self.dump_args(img, True), "control", self.deadline.timeout(CMD_TIMEOUT))
        took = time.monotonic() - t0
        if res.timed_out or res.rc != 0:
            raise TestFailure("control dump failed: " + res.describe())
        ztlib.remove_tree(img)
        return took

    def check_unharmed(self, what, allow_region=False):
        # A target whose ckpt was killed cures itself once the kernel has detached it, which
        # takes a moment: give it up to 3 s (this bounds a wait, it asserts no speed).
        end = time.monotonic() + 3
        while True:
            try:
                return self.check_unharmed_now(what, allow_region)
            except TestFailure as e:
                if time.monotonic() > end:
                    raise TestFailure("%s\n  threads: %s" % (e, self.thread_places()))
                time.sleep(0.05)

    def thread_places(self):
        out = []
        try:
            tids = sorted(os.listdir("/proc/%d/task" % self.prog.pid))
        except OSError:
            return "(gone)"
        for tid in tids:
            base = "/proc/%d/task/%s/" % (self.prog.pid, tid)
            try:
                out.append("%s wchan=%s syscall=%s" % (tid, ztlib.read_text(base + "wchan"),
                                                       ztlib.read_text(base + "syscall").strip()))
            except OSError:
                pass
        return "; ".join(out)

    def check_unharmed_now(self, what, allow_region):
        prog = self.prog
        if prog.proc.poll() is not None:
            raise TestFailure("%s: the target died: %s; output:\n%s"
                              % (what, ztlib.describe_rc(prog.proc.returncode), ztlib.indent(prog.output())))
        bad = ztlib.traced_or_stopped(prog.pid)
        if bad:
            raise TestFailure("%s: the target %s" % (what, bad))
        after = ztlib.visible_state(prog.pid, tree=True)
        leaked = []
        if allow_region:
            # A kill inside the two documented windows leaves the parasite's region mapped
            # (in the program or, for a tree, in the one process ckpt was infecting).
            leaked = ztlib.drop_parasite_regions(self.before, after)
        problems = ztlib.compare_state(self.before, after, False) + ztlib.tree_traced_or_stopped(after["tree"])
        if problems:
            raise TestFailure("%s: the target changed:\n  %s" % (what, ztlib.state_problems_text(problems)))
        if leaked:
            self.before = ztlib.visible_state(prog.pid, tree=True)  # the leaked region is now part of it

    def one(self, name, argv, leave_running, sig, delay):
        what = "%s %s %s after %.0f ms" % (name, "leave-running" if leave_running else "default",
                                            signal.Signals(sig).name, delay * 1000)
        if self.prog is None:
            self.start_target(name, argv)
        img = self.newdir("img")
        started = self.ckpt.start(self.dump_args(img, leave_running), "dump")
        time.sleep(delay)
        try:
            started[0].send_signal(sig)
        except ProcessLookupError:
            pass
        res = self.ckpt.finish(started, self.deadline.timeout(CMD_TIMEOUT))
        if res.timed_out:
            raise TestFailure("%s: ckpt hangs: %s" % (what, res.describe()))
        completed = res.rc == 0
        if res.rc == -signal.SIGKILL and leave_running and os.path.isfile(os.path.join(img, "meta.img")):
            # SIGKILL landed after the image was complete, while ckpt let the tree go: the
            # image must be whole and the tree unharmed (its own way home if ckpt was still
            # attached).
            info = self.ckpt.run(["info", img], "info", self.deadline.timeout(CMD_TIMEOUT))
            if info.rc != 0:
                raise TestFailure("%s: a meta.img is there but the image is not complete: %s" % (what, info.describe()))
            self.check_unharmed(what, allow_region=True)
            self.checked += 1
            return "killed after the image was complete, target running"
        if res.rc == -signal.SIGKILL and not leave_running and os.path.isfile(os.path.join(img, "meta.img")):
            # SIGKILL landed after the image was complete: ckpt may have been killing the
            # target (a complete image allows it), or not yet (the target then runs on).
            info = self.ckpt.run(["info", img], "info", self.deadline.timeout(CMD_TIMEOUT))
            if info.rc != 0:
                raise TestFailure("%s: a meta.img is there but the image is not complete: %s" % (what, info.describe()))
            end = time.monotonic() + 2
            while self.prog.proc.poll() is None and time.monotonic() < end:
                time.sleep(0.01)
            if self.prog.proc.poll() is None:
                self.check_unharmed(what)
                return "killed after the image was complete, target running"
            completed = True
        if completed:
            info = self.ckpt.run(["info", img], "info", self.deadline.timeout(CMD_TIMEOUT))
            if info.rc != 0:
                raise TestFailure("%s: ckpt succeeded but its image is not complete: %s" % (what, info.describe()))
            if not leave_running:
                if self.prog.proc.returncode is None:  # not reaped yet by the poll above
                    ztlib.wait_pid_exit(self.prog.pid, self.deadline.timeout(20))
                self.prog.proc.wait()
                self.prog = None
                # The rest of the tree was killed too; its orphans are ours (subreaper).
                left = ztlib.wait_gone(set(self.before["tree"]), self.deadline.timeout(10))
                if left:
                    raise TestFailure("%s: processes of the tree still exist 10 s after a completed dump without "
                                      "--leave-running: %s" % (what, left))
            else:
                self.check_unharmed(what)
            return "completed"
        killed = res.rc == -signal.SIGKILL or (res.rc == -sig and not res.err.strip())
        if sig != signal.SIGKILL and not killed:
            want = "ckpt: error: interrupted; process %d left running" % self.prog.pid
            lines = [l for l in res.err.split("\n") if l.strip()]
            if res.rc != 1 or lines != [want]:
                raise TestFailure("%s: expected exit code 1 and exactly %r, got %s" % (what, want, res.describe()))
            left = partial_files(img)
            if left:
                raise TestFailure("%s: partial files left behind: %s" % (what, left))
        self.check_unharmed(what, allow_region=killed)
        self.checked += 1
        if killed:
            # The next dump into the same directory cleans up after the killed one.
            res2 = self.ckpt.run(self.dump_args(img, True), "redump", self.deadline.timeout(CMD_TIMEOUT))
            if res2.timed_out or res2.rc != 0:
                raise TestFailure("%s: the dump after the killed one failed: %s" % (what, res2.describe()))
            left = partial_files(img)
            if left:
                raise TestFailure("%s: partial files left after the next dump: %s" % (what, left))
            self.check_unharmed(what + ", then a full dump")
            return "killed, cleaned by the next dump"
        return "rolled back"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ztlib.common_args(ap)
    known = dict(TARGETS + TREE_TARGETS)
    ap.add_argument("--target", action="append", default=[], choices=sorted(known),
                    help="run on this zt_ program (repeatable; default: %s)" % " ".join(n for n, _ in TARGETS))
    args = ap.parse_args()
    args.ckpt = os.path.abspath(args.ckpt)
    args.bindir = os.path.abspath(args.bindir)
    ztlib.check_root_and_binary(args)
    ztlib.set_subreaper()
    ztlib.install_signal_handlers()
    r = Run(args)
    log("interrupt: start (tmp dir %s)" % r.tmp)
    failures = []
    outcomes = {}
    try:
        for name, argv in ([(n, known[n]) for n in args.target] or TARGETS):
            took = r.measure(name, argv)
            delays = [0.0005, 0.003] + [took * 1.2 * i / (N_DELAYS - 1) for i in range(1, N_DELAYS)]
            log("  %s: control dump %.0f ms; delays %s ms" % (name, took * 1000, [round(d * 1000, 1) for d in delays]))
            for leave_running in (True, False):
                for sig in SIGNALS:
                    for delay in delays:
                        try:
                            out = r.one(name, argv, leave_running, sig, delay)
                            outcomes[out] = outcomes.get(out, 0) + 1
                        except TestFailure as e:
                            failures.append(str(e))
                            log("  FAIL %s" % str(e).replace("\n", "\n       "))
                            r.kill_target()
            if r.prog is not None:
                r.finish_target()
    except TestFailure as e:
        failures.append(str(e))
        log("  FAIL %s" % e)
    killed = ztlib.kill_descendants("interrupt cleanup")
    if killed:
        failures.append("processes left behind: %s" % killed)
    log("  outcomes: %s" % ", ".join("%s %d" % kv for kv in sorted(outcomes.items())))
    if not failures and r.checked == 0:
        failures.append("no signal landed before the end of a dump: nothing was tested")
    if failures:
        log("FAIL interrupt: %d failures; kept %s" % (len(failures), r.tmp))
        return 1
    ztlib.remove_tree(r.tmp)
    log("PASS interrupt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
