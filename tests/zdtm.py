#!/usr/bin/env python3
"""zdtm.py - end-to-end checkpoint/restore tests for ckpt, in the shape of CRIU's zdtm.

Runs one test program tests/programs/NAME.c (built as zt_NAME) per the protocol
in tests/README.md:

  1. start zt_NAME in a fresh work directory (its own session; stdin /dev/null or
     a pty; stdout+stderr appended to WORKDIR/out.log) and wait for READY;
  2. read its visible state (/proc/PID/maps, fds, signal masks, ids, ...), and that of
     every descendant (the tree: pids, parents, groups, sessions, maps, fds; zombies with
     their exit status);
  3. `ckpt dump --pid PID -o IMG` (plus --leave-running in leave-running mode),
     check that the image exists and `ckpt info` accepts it;
  4. restore mode: check the original tree was killed and is reaped (the harness, a
     subreaper, reaps the orphans) and its pids are free, run `ckpt restore -D IMG`
     (foreground; with --detach: `-d`, and the
     restored process is then the harness's child, as subreaper), wait for the
     restored pid and compare its visible state with the one before the dump;
     leave-running mode: check the original runs on untraced and its visible
     state is unchanged;
  5. feed input if the test needs it, SIGTERM the process, and require exit
     code 0 (in foreground restore: ckpt's exit code) and a PASS line;
  6. require that nothing the harness started is left running or unreaped: every
     process of the tree must have been reaped by its parent (an orphan would have been
     handed to the harness, a child subreaper, and is found there).

Modes: restore, leave-running, and plain (no ckpt at all: checks the program
and the harness themselves).

Exit code 0 only on a full pass. The temporary directory (work dir, image,
ckpt logs, state snapshots) is removed on success and kept (and printed) on
failure.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztlib  # noqa: E402
from ztlib import TestFailure, log  # noqa: E402

# Per-test options:
#   prog          the program, zt_PROG (default: the test name)
#   args          extra argv for the program ({bindir} is replaced)
#   pty           stdin is the slave of a pty the harness holds (ckpt restore gets it as stdin too)
#   input         bytes written to the pty master after the dump (leave-running) or restore
#   wait_file     do not send SIGTERM before WORKDIR/<wait_file> exists
#   ready_timeout seconds to wait for READY
#   restore_args  extra arguments for `ckpt restore`
#   skip_state    visible-state fields not compared (after a restore or a --leave-running dump)
#   max_data_bytes  data.img must be at most this big (e.g. holes must not be stored)
TESTS = {
    "counter": {},
    "heap_mmap": {},
    "bigbuf": {"ready_timeout": 60},
    "file_mmap": {},
    "fprintf": {},
    "files": {},
    "signals": {},
    "timers": {},
    "dlopen": {"args": ["{bindir}/libzt_dl.so"]},
    "env": {},
    "nanosleep": {"wait_file": "nanosleep.done"},
    "read_tty": {"pty": True, "input": b"hello ckpt\n", "restore_args": ["--shell-job"],
                 "skip_state": ("pgrp", "session")},
    "fpu": {},
    "unlinked_sparse": {"max_data_bytes": 16 << 20},  # a 1 GiB file with 13 KiB of data
    "unlinked_shared": {},
    "unlinked_mmap": {},
    "changed_file": {},
    "proc_attrs": {},
    "itimer_pending": {},
    "mmap_shared_ro": {},
    "vma_flags": {},
    "guard_pages": {},
    "sigpipe_pending": {},
    "reservation": {},
    "unlinked_dir": {},
    # event descriptors (issue 8)
    "events_epoll": {},
    "events_timerfd": {},
    "events_inotify": {},
    "posix_timers": {},
    "file_locks": {},
    "memfd": {"max_data_bytes": 2 << 20},  # 4 MiB memfd with 64 KiB of data, zeros and holes
    "sysv_shm": {},
    "inet_sockets": {},
    # multi-threaded (tests/programs/threads_*.c)
    "threads_mutex": {},
    "threads_condvar": {},
    "threads_blocked": {},
    "threads_tls": {},
    "threads_sigmask": {},
    "threads_many_100": {"prog": "threads_many", "args": ["100"]},
    "threads_many_1000": {"prog": "threads_many", "args": ["1000"], "ready_timeout": 60},
    "threads_names_affinity": {},
    "threads_atfork": {},
    "threads_openmp": {},
    "threads_exited": {},
    "threads_ids": {},
    "threads_backtrace": {},
    "threads_bigbuf": {"ready_timeout": 60},
    "threads_churn": {"skip_state": ("threads",)},  # threads come and go by design
    "threads_seccomp": {},
    # process trees (tests/programs/tree_*.c): the whole tree is compared (ztlib.tree_state)
    "tree_fork": {},
    "tree_zombie": {},
    "tree_pipe": {},
    "tree_pipe_full": {},
    "tree_shared_fd": {},
    "tree_shm": {},
    "tree_pgrp": {},
    "tree_many": {},
    "tree_exec": {},
    "tree_sigchld": {},
    "tree_fifo": {},
    "tree_cow": {},
    "tree_shm_child": {},
    "tree_events": {},
    "tree_memfd": {},
    "tree_unix_sockets": {},
    "tree_tcp": {},
    "tree_pty": {},
    "tree_pgrp_orphan": {},
    "tree_session_orphan": {},
}

DEFAULTS = {"prog": None, "args": [], "pty": False, "input": None, "wait_file": None, "ready_timeout": 10,
            "restore_args": [], "skip_state": (), "max_data_bytes": None}

DUMP_TIMEOUT = 40          # one ckpt dump
INFO_TIMEOUT = 20          # one ckpt info
RESTORE_APPEAR_TIMEOUT = 20  # until the restored process is up and looks like the original
DETACH_RESTORE_TIMEOUT = 30  # ckpt restore -d returning
EXIT_TIMEOUT = 20          # from SIGTERM to exit
WAIT_FILE_TIMEOUT = 20


class Run:
    def __init__(self, args, name, opts):
        self.args = args
        self.name = name
        self.opts = opts
        self.mode = args.mode + ("-detach" if args.detach else "")
        self.tag = "%s/%s" % (name, self.mode)
        self.deadline = ztlib.Deadline(args.timeout)
        self.tmp = ztlib.make_tmpdir("%s-%s" % (name, self.mode))
        self.work = os.path.join(self.tmp, "work")
        self.img = os.path.join(self.tmp, "img")
        os.mkdir(self.work)
        os.mkdir(self.img)
        self.ckpt = ztlib.Ckpt(args.ckpt, self.tmp)
        self.master = self.slave = None
        self.prog = None
        self.pid = None
        self.tree = {}  # tree_state of the program's descendants after READY (before the dump)
        self.restore = None  # started `ckpt restore` (foreground)
        self.t0 = time.monotonic()

    def step(self, msg):
        log("  [%6.2f s] %s" % (time.monotonic() - self.t0, msg))

    def save(self, fname, obj):
        with open(os.path.join(self.tmp, fname), "w") as f:
            if isinstance(obj, dict):
                for k, v in obj.items():
                    if k == "maps":
                        f.write("maps:\n" + "".join("  %s\n" % l for l in v))
                    elif k == "tree":
                        f.write("tree: %d processes\n" % len(v))
                        for pid, e in sorted(v.items()):
                            f.write("  %s\n" % ztlib.tree_entry_text(pid, e))
                            for tk, tv in e.items():
                                if tk == "maps":
                                    f.write("    maps:\n" + "".join("      %s\n" % l for l in tv))
                                elif tk not in ("ppid", "pgrp", "session", "comm"):
                                    f.write("    %s: %r\n" % (tk, tv))
                    else:
                        f.write("%s: %r\n" % (k, v))
            else:
                f.write(str(obj))

    # ---------------------------------------------------------------- phases

    def start_program(self):
        stdin = None
        if self.opts["pty"]:
            self.master, self.slave = os.openpty()
            stdin = self.slave
        argv = [a.replace("{bindir}", self.args.bindir) for a in self.opts["args"]]
        prog = self.opts["prog"] or self.name
        self.prog = ztlib.Program(prog, self.args.bindir, self.work, argv, stdin_fd=stdin)
        self.pid = self.prog.pid
        self.step("started zt_%s%s, pid %d" % (prog, "".join(" " + a for a in argv), self.pid))
        self.prog.wait_ready(self.deadline.timeout(self.opts["ready_timeout"]))
        self.step("READY")

    def check_image(self):
        for f in ("meta.img", "data.img"):
            p = os.path.join(self.img, f)
            if not os.path.isfile(p):
                raise TestFailure("dump succeeded but %s is missing (image dir has: %s)"
                                  % (p, ", ".join(sorted(os.listdir(self.img))) or "nothing"))
        res = self.ckpt.run(["info", self.img], "info", self.deadline.timeout(INFO_TIMEOUT))
        if res.timed_out or res.rc != 0:
            raise TestFailure("`ckpt info` rejects the image of a successful dump: " + res.describe())
        res = self.ckpt.run(["info", "--json", self.img], "info-json", self.deadline.timeout(INFO_TIMEOUT))
        if res.timed_out or res.rc != 0:
            raise TestFailure("`ckpt info --json` rejects the image of a successful dump: " + res.describe())
        try:
            json.loads(res.out)
        except ValueError as e:
            raise TestFailure("`ckpt info --json` output is not JSON (%s):\n%s" % (e, ztlib.indent(res.out[:2000])))
        self.step("image ok (ckpt info, ckpt info --json)")
        limit = self.opts["max_data_bytes"]
        if limit is not None:
            size = os.path.getsize(os.path.join(self.img, "data.img"))
            if size > limit:
                raise TestFailure("data.img is %d bytes, more than the %d expected" % (size, limit))
            self.step("data.img is %d bytes (at most %d)" % (size, limit))

    def dump(self, leave_running):
        args = ["dump", "--pid", self.pid, "-o", self.img] + (["--leave-running"] if leave_running else [])
        res = self.ckpt.run(args, "dump", self.deadline.timeout(DUMP_TIMEOUT))
        if res.timed_out or res.rc != 0:
            raise TestFailure("dump failed: " + res.describe())
        self.step("dumped in %.2f s" % res.elapsed)

    def original_gone(self):
        """Restore mode: the dump must have killed the original tree; reap it; its pids must be free."""
        try:
            rc = self.prog.proc.wait(timeout=self.deadline.timeout(10))
        except subprocess.TimeoutExpired:
            raise TestFailure("the original process %d is still alive 10 s after `ckpt dump` (without "
                              "--leave-running it must be killed)" % self.pid)
        if rc >= 0:
            raise TestFailure("the original process exited by itself (%s) instead of being killed by the dump; "
                              "output:\n%s" % (ztlib.describe_rc(rc), ztlib.indent(self.prog.output())))
        if ztlib.pid_exists(self.pid):
            raise TestFailure("pid %d is in use again after the original was reaped: cannot restore" % self.pid)
        if self.tree:
            self.tree_gone()
        self.step("original killed (%s), reaped, pid %d free%s" % (
            ztlib.describe_rc(rc), self.pid, ", and the %d other pids of its tree" % len(self.tree) if self.tree else ""))

    def tree_gone(self):
        """The rest of the original tree: once the root is dead its children (zombies too)
        are orphans handed to the harness, a subreaper, which reaps them here; each must
        be gone (killed by the dump, not left running) before the restore needs its pid."""
        pending = set(self.tree)
        end = time.monotonic() + self.deadline.timeout(10)
        while pending:
            for pid in sorted(pending):
                try:
                    os.waitpid(pid, os.WNOHANG)  # ours once orphaned; not yet if its parent still dies
                except ChildProcessError:
                    pass
                if not ztlib.pid_exists(pid):
                    pending.discard(pid)
            if not pending:
                break
            if time.monotonic() >= end:
                info = []
                for pid in sorted(pending):
                    try:
                        st = ztlib.proc_stat(pid)
                        info.append("%d (%s, state %s, parent %d)" % (pid, self.tree[pid]["comm"], st["state"],
                                                                      st["ppid"]))
                    except (OSError, ValueError):
                        info.append(str(pid))
                raise TestFailure("processes of the original tree still exist 10 s after `ckpt dump` (without "
                                  "--leave-running the whole tree must be killed): " + ", ".join(info))
            time.sleep(0.02)

    def restore_fg(self, before):
        args = ["restore", "-D", self.img] + self.opts["restore_args"]
        self.restore = self.ckpt.start(args, "restore", stdin=self.slave)
        try:
            after = ztlib.wait_restored(self.restore, self.pid, before,
                                        self.deadline.timeout(RESTORE_APPEAR_TIMEOUT), self.opts["skip_state"],
                                        self.prog.output, tree=True)
        except TestFailure:
            if ztlib.pid_exists(self.pid):
                try:
                    self.save("state-after.txt", ztlib.visible_state(self.pid, tree=True))
                except TestFailure:
                    pass
            raise
        self.save("state-after.txt", after)
        self.step("restored pid %d is up and its visible state matches%s" % (self.pid, self.tree_text(after)))

    def restore_detached(self, before):
        args = ["restore", "-D", self.img, "-d"] + self.opts["restore_args"]
        res = self.ckpt.run(args, "restore-detach", self.deadline.timeout(DETACH_RESTORE_TIMEOUT), stdin=self.slave)
        if res.timed_out or res.rc != 0:
            raise TestFailure("ckpt restore -d failed: " + res.describe())
        self.step("ckpt restore -d returned 0 in %.2f s" % res.elapsed)
        if not ztlib.pid_running(self.pid):
            raise TestFailure("after `ckpt restore -d` returned, pid %d is not running" % self.pid)
        ppid = ztlib.proc_stat(self.pid)["ppid"]
        if ppid != os.getpid():
            raise TestFailure("restored pid %d has parent %d, expected the harness (%d, a subreaper)"
                              % (self.pid, ppid, os.getpid()))
        bad = ztlib.traced_or_stopped(self.pid)
        if bad:
            raise TestFailure("after `ckpt restore -d` returned: " + bad)
        after = ztlib.visible_state(self.pid, tree=True)
        self.save("state-after.txt", after)
        problems = ztlib.compare_state(before, after, True, self.opts["skip_state"])
        problems += ztlib.tree_traced_or_stopped(after["tree"])
        if problems:
            raise TestFailure("visible state of the restored process differs from the original:\n  "
                              + ztlib.state_problems_text(problems))
        self.step("restored pid %d runs, is our child, visible state matches%s" % (self.pid, self.tree_text(after)))

    def check_leave_running(self, before):
        if self.prog.proc.poll() is not None:
            raise TestFailure("the original died during a --leave-running dump: %s; output:\n%s"
                              % (ztlib.describe_rc(self.prog.proc.returncode), ztlib.indent(self.prog.output())))
        bad = ztlib.traced_or_stopped(self.pid)
        if bad:
            raise TestFailure("after a --leave-running dump: " + bad)
        bad = ztlib.tree_traced_or_stopped(before["tree"])
        if bad:
            raise TestFailure("after a --leave-running dump: " + "; ".join(bad))
        after = ztlib.visible_state(self.pid, tree=True)
        self.save("state-after.txt", after)
        problems = ztlib.compare_state(before, after, False, self.opts["skip_state"])
        if problems:
            raise TestFailure("the dump changed the visible state of the running process:\n  "
                              + ztlib.state_problems_text(problems))
        self.step("original still running, untraced, visible state unchanged")

    def feed_and_wait(self):
        if self.opts["input"]:
            os.write(self.master, self.opts["input"])
            self.step("wrote %r to the pty" % self.opts["input"])
        if self.opts["wait_file"]:
            path = os.path.join(self.work, self.opts["wait_file"])
            end = time.monotonic() + self.deadline.timeout(WAIT_FILE_TIMEOUT)
            while not os.path.exists(path):
                if not ztlib.pid_running(self.pid):
                    raise TestFailure("process %d died while waiting for %s; output:\n%s"
                                      % (self.pid, self.opts["wait_file"], ztlib.indent(self.prog.output())))
                if time.monotonic() >= end:
                    raise TestFailure("%s did not appear within %d s" % (self.opts["wait_file"], WAIT_FILE_TIMEOUT))
                time.sleep(0.05)
            self.step("%s exists" % self.opts["wait_file"])

    def terminate_and_check(self, how):
        if not ztlib.pid_running(self.pid):
            raise TestFailure("process %d is not running when it should get SIGTERM; output:\n%s"
                              % (self.pid, ztlib.indent(self.prog.output())))
        os.kill(self.pid, signal.SIGTERM)
        self.step("sent SIGTERM to %d" % self.pid)
        timeout = self.deadline.timeout(EXIT_TIMEOUT)
        if how == "original":
            try:
                rc = self.prog.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise TestFailure("process %d did not exit within %d s of SIGTERM; output:\n%s"
                                  % (self.pid, EXIT_TIMEOUT, ztlib.indent(self.prog.output())))
            desc, ok = ztlib.describe_rc(rc), rc == 0
        elif how == "restore-fg":
            res = ztlib.Ckpt.finish(self.restore, timeout)
            self.restore = None
            if res.timed_out:
                raise TestFailure("ckpt restore did not exit within %d s of SIGTERM to the restored process: %s\n"
                                  "  output:\n%s" % (EXIT_TIMEOUT, res.describe(), ztlib.indent(self.prog.output())))
            desc = "ckpt restore " + ztlib.describe_rc(res.rc)
            if res.err.strip():
                desc += " (stderr: %s)" % res.err.strip().replace("\n", " | ")
            ok = res.rc == 0
            if ztlib.pid_exists(self.pid):
                raise TestFailure("ckpt restore exited (%s) but pid %d still exists" % (desc, self.pid))
        else:  # detached: the restored process is our (reparented) child
            status = ztlib.wait_pid_exit(self.pid, timeout)
            if status is None:
                raise TestFailure("restored process %d did not exit within %d s of SIGTERM; output:\n%s"
                                  % (self.pid, EXIT_TIMEOUT, ztlib.indent(self.prog.output())))
            desc = ztlib.describe_status(status)
            ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        self.step("process finished: %s" % desc)
        self.prog.check_result(desc, ok)

    def tree_text(self, state):
        n = len(state.get("tree") or {})
        return ", and so does that of the %d other processes of its tree" % n if n else ""

    def check_nothing_left(self):
        """Once the root is gone, nothing may be left: a process of the tree that its parent
        did not reap (or that outlived its parent) has been handed to the harness, a child
        subreaper, so it is among the harness's descendants, running or as a zombie."""
        left = ztlib.descendants()
        if left:
            info = []
            for p in sorted(left):
                try:
                    st = ztlib.proc_stat(p)
                    info.append("%d (%s, %s, parent %d%s)" % (
                        p, ztlib.read_text("/proc/%d/comm" % p).strip(),
                        "unreaped zombie" if st["state"] in ("Z", "X") else "state " + st["state"], st["ppid"],
                        ", of the tree at READY" if p in self.tree else ""))
                except (OSError, ValueError):
                    info.append(str(p))
            ztlib.kill_descendants()
            raise TestFailure("processes left behind: " + ", ".join(info))

    # ---------------------------------------------------------------- main

    def run(self):
        mode = self.args.mode
        self.start_program()
        if mode == "plain":
            self.tree = ztlib.tree_state(self.pid)
            if self.tree:
                self.step("%d descendants of %d in its tree" % (len(self.tree), self.pid))
            bad = ztlib.tree_traced_or_stopped(self.tree)
            if bad:
                raise TestFailure("after READY: " + "; ".join(bad))
            self.feed_and_wait()
            self.terminate_and_check("original")
            self.check_nothing_left()
            return
        before = ztlib.visible_state(self.pid, tree=True)
        self.tree = before["tree"]
        self.save("state-before.txt", before)
        if self.tree:
            self.step("%d descendants of %d in its tree (%d zombies)" % (
                len(self.tree), self.pid, sum(1 for e in self.tree.values() if e["zombie"])))
        bad = ztlib.traced_or_stopped(self.pid)
        if bad:
            raise TestFailure("before the dump: " + bad)
        bad = ztlib.tree_traced_or_stopped(self.tree)
        if bad:
            raise TestFailure("before the dump: " + "; ".join(bad))
        if mode == "leave-running":
            self.dump(leave_running=True)
            self.check_leave_running(before)
            self.check_image()
            self.feed_and_wait()
            self.terminate_and_check("original")
        else:
            self.dump(leave_running=False)
            self.original_gone()
            self.check_image()
            if self.args.detach:
                self.restore_detached(before)
                self.feed_and_wait()
                self.terminate_and_check("restore-detach")
            else:
                self.restore_fg(before)
                self.feed_and_wait()
                self.terminate_and_check("restore-fg")
        self.check_nothing_left()

    def cleanup(self, ok):
        if self.restore is not None:
            p = self.restore[0]
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except Exception:
                pass
        if self.prog is not None and self.prog.proc.poll() is None:
            self.prog.proc.kill()
            try:
                self.prog.proc.wait(timeout=5)
            except Exception:
                pass
        killed = ztlib.kill_descendants("test %s" % ("passed" if ok else "failed"))
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        return killed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ztlib.common_args(ap)
    ap.add_argument("--mode", choices=("restore", "leave-running", "plain"), required=True)
    ap.add_argument("--detach", action="store_true", help="restore mode: `ckpt restore -d`")
    ap.add_argument("--list", action="store_true", help="list the known tests and exit")
    ap.add_argument("name", nargs="?", help="test name (tests/programs/NAME.c)")
    args = ap.parse_args()
    if args.list:
        print("\n".join(sorted(TESTS)))
        return 0
    if not args.name or args.name not in TESTS:
        ap.error("unknown test %r; known: %s" % (args.name, ", ".join(sorted(TESTS))))
    if args.detach and args.mode != "restore":
        ap.error("--detach needs --mode restore")
    args.bindir = os.path.abspath(args.bindir)
    if args.mode != "plain":
        args.ckpt = os.path.abspath(args.ckpt)
        ztlib.check_root_and_binary(args)
    opts = dict(DEFAULTS)
    opts.update(TESTS[args.name])

    ztlib.set_subreaper()
    ztlib.install_signal_handlers()
    run = Run(args, args.name, opts)
    log("zdtm %s: start (tmp dir %s)" % (run.tag, run.tmp))
    ok = False
    err = None
    try:
        run.run()
        ok = True
    except TestFailure as e:
        err = str(e)
    except BaseException as e:  # interrupted, or a harness bug: still clean up
        err = "harness error: %r" % (e,)
    killed = run.cleanup(ok)
    if ok and killed:
        ok, err = False, "processes were left behind: %s" % killed
    if ok:
        if not args.keep:
            ztlib.remove_tree(run.tmp)
        log("PASS zdtm %s (%.2f s)" % (run.tag, time.monotonic() - run.t0))
        return 0
    log("FAIL zdtm %s: %s" % (run.tag, err))
    log("  kept for inspection: %s (work/out.log, img/, ckpt-*.out/.err, state-*.txt)" % run.tmp)
    return 1


if __name__ == "__main__":
    sys.exit(main())
