#!/usr/bin/env python3
"""backtrace.py - `ckpt info` lists every thread; `ckpt info --backtrace` shows where each one is.

With tests/programs/threads_backtrace.c (zt_threads_backtrace):
  1. start it per the zdtm protocol and wait for READY; read its bt.txt (ROLE TID for
     main, alpha, beta) and /proc/P/task (tids and comm);
  2. `ckpt dump --leave-running --pid P -o IMG`; /proc/P/task must be unchanged and the
     process running, untraced;
  3. `ckpt info IMG`: the `tid N 'NAME'` lines of process P list exactly the tids of
     /proc/P/task, each with its comm as NAME;
  4. `ckpt info --json IMG`: the threads of pid P are the same tids with the same names;
  5. `ckpt info --backtrace IMG`: each thread's frames hold its expected call chain,
     innermost first, in order (frame numbers increasing), attributed to the
     zt_threads_backtrace binary:
        main   zt_bt_main_loop, main
        alpha  zt_bt_waiting_in_alpha, zt_bt_alpha_start
        beta   zt_bt_waiting_in_beta, zt_bt_beta_outer, zt_bt_beta_start
     and no zt_bt_* function shows up in another thread's frames;
  6. SIGTERM: the program must exit 0 with PASS (its threads were still in place);
  7. nothing may be left running.
Exit code 0 only on a full pass; the temporary directory is kept on failure.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztlib  # noqa: E402
from ztlib import TestFailure, log  # noqa: E402

PROGRAM = "threads_backtrace"
CHAINS = {
    "main": ["zt_bt_main_loop", "main"],
    "alpha": ["zt_bt_waiting_in_alpha", "zt_bt_alpha_start"],
    "beta": ["zt_bt_waiting_in_beta", "zt_bt_beta_outer", "zt_bt_beta_start"],
}
NAMES = {"alpha": "bt-alpha", "beta": "bt-beta"}  # main keeps its comm

CMD_TIMEOUT = 40

_TID_RE = re.compile(r"^\s+tid (\d+) '(.*)' state ")
_FRAME_RE = re.compile(r"^\s+#(\d+)\s+(0x[0-9a-fA-F]+)\s+(\S+)\s+\((.*)\)\s*$")
_PROC_RE = re.compile(r"^process (\d+) ")


def parse_info(text, pid):
    """From `ckpt info [--backtrace]` text: [(tid, name, [(frame_no, function, object), ...])]
    for the threads of process pid, in the order listed."""
    threads = []
    cur_pid = None
    cur = None
    for line in text.splitlines():
        m = _PROC_RE.match(line)
        if m:
            cur_pid, cur = int(m.group(1)), None
            continue
        if cur_pid != pid:
            continue
        m = _TID_RE.match(line)
        if m:
            cur = (int(m.group(1)), m.group(2), [])
            threads.append(cur)
            continue
        m = _FRAME_RE.match(line)
        if m and cur is not None:
            func = m.group(3)
            func = func.split("+", 1)[0] if func != "??" else None
            cur[2].append((int(m.group(1)), func, m.group(4)))
            continue
        if re.match(r"^  \S", line):  # the next section ("  memory:", ...)
            cur = None
    return threads


def task_names(pid):
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        if t.isdigit():
            try:
                out[int(t)] = ztlib.read_text("/proc/%d/task/%s/comm" % (pid, t)).rstrip("\n")
            except FileNotFoundError:
                pass
    return out


class Run:
    def __init__(self, args):
        self.args = args
        self.deadline = ztlib.Deadline(args.timeout)
        self.tmp = ztlib.make_tmpdir("backtrace")
        self.work = os.path.join(self.tmp, "work")
        self.img = os.path.join(self.tmp, "img")
        os.mkdir(self.work)
        os.mkdir(self.img)
        self.ckpt = ztlib.Ckpt(args.ckpt, self.tmp)
        self.prog = None
        self.t0 = time.monotonic()

    def step(self, msg):
        log("  [%6.2f s] %s" % (time.monotonic() - self.t0, msg))

    def info(self, extra, tag):
        res = self.ckpt.run(["info"] + extra + [self.img], tag, self.deadline.timeout(CMD_TIMEOUT))
        if res.timed_out or res.rc != 0:
            raise TestFailure("`ckpt info %s` failed: %s" % (" ".join(extra), res.describe()))
        return res.out

    def run(self):
        self.prog = ztlib.Program(PROGRAM, self.args.bindir, self.work)
        pid = self.prog.pid
        self.step("started zt_%s, pid %d" % (PROGRAM, pid))
        self.prog.wait_ready(self.deadline.timeout(10))
        roles = {}
        for line in ztlib.read_text(os.path.join(self.work, "bt.txt")).splitlines():
            role, tid = line.split()
            roles[role] = int(tid)
        if sorted(roles) != sorted(CHAINS) or roles["main"] != pid:
            raise TestFailure("bt.txt is %r: expected main %d, alpha and beta" % (roles, pid))
        role_of = {tid: role for role, tid in roles.items()}
        tasks = task_names(pid)
        if sorted(tasks) != sorted(roles.values()):
            raise TestFailure("/proc/%d/task lists %s, bt.txt %s" % (pid, sorted(tasks), roles))
        for role, name in NAMES.items():
            if tasks[roles[role]] != name:
                raise TestFailure("thread %s (%d) is named %r, expected %r" % (role, roles[role], tasks[roles[role]],
                                                                            name))
        self.step("READY; threads %s" % ", ".join("%s %d %r" % (role_of[t], t, n) for t, n in sorted(tasks.items())))

        res = self.ckpt.run(["dump", "--leave-running", "--pid", pid, "-o", self.img], "dump",
                            self.deadline.timeout(CMD_TIMEOUT))
        if res.timed_out or res.rc != 0:
            raise TestFailure("dump failed: " + res.describe())
        bad = ztlib.traced_or_stopped(pid)
        if bad:
            raise TestFailure("after a --leave-running dump: " + bad)
        if task_names(pid) != tasks:
            raise TestFailure("threads changed during the dump: before %s, after %s" % (tasks, task_names(pid)))
        self.step("dumped with --leave-running in %.2f s; process running, threads unchanged" % res.elapsed)

        # ckpt info: every thread, with its name
        listed = parse_info(self.info([], "info"), pid)
        got = {tid: name for tid, name, _ in listed}
        if len(listed) != len(got):
            raise TestFailure("`ckpt info` lists a thread twice: %s" % [t for t, _, _ in listed])
        if sorted(got) != sorted(tasks):
            raise TestFailure("`ckpt info` lists tids %s for process %d; /proc/%d/task has %s"
                              % (sorted(got), pid, pid, sorted(tasks)))
        for tid, name in sorted(tasks.items()):
            if got[tid] != name:
                raise TestFailure("`ckpt info`: thread %d is named %r, /proc says %r" % (tid, got[tid], name))
        if listed and listed[0][0] != pid:
            log("  note: `ckpt info` does not list the main thread first (%s)" % [t for t, _, _ in listed])
        self.step("ckpt info lists exactly the threads of /proc/%d/task with their names" % pid)

        # ckpt info --json: the same
        try:
            doc = json.loads(self.info(["--json"], "info-json"))
            jthreads = {int(t["tid"]): t.get("name") for t in doc["threads"] if int(t["pid"]) == pid}
        except (ValueError, KeyError, TypeError) as e:
            raise TestFailure("`ckpt info --json`: no usable threads array (%r)" % (e,))
        if jthreads != tasks:
            raise TestFailure("`ckpt info --json` threads of pid %d: %s; /proc: %s" % (pid, jthreads, tasks))
        self.step("ckpt info --json lists the same threads")

        # ckpt info --backtrace: where each thread is
        text = self.info(["--backtrace"], "info-backtrace")
        bts = {tid: frames for tid, _, frames in parse_info(text, pid)}
        if sorted(bts) != sorted(tasks):
            raise TestFailure("`ckpt info --backtrace` lists tids %s, expected %s" % (sorted(bts), sorted(tasks)))
        exe = os.path.realpath(self.prog.path)
        problems = []
        ours = {f for chain in CHAINS.values() for f in chain if f.startswith("zt_bt_")}
        for tid, frames in sorted(bts.items()):
            role = role_of[tid]
            funcs = [f for _, f, _ in frames]
            nums = [n for n, _, _ in frames]
            if nums != list(range(len(nums))):
                problems.append("thread %s (%d): frame numbers %s are not 0, 1, 2, ..." % (role, tid, nums))
            pos = -1
            for want in CHAINS[role]:
                idx = [i for i, f in enumerate(funcs) if f == want]
                if not idx:
                    problems.append("thread %s (%d): no frame in %s" % (role, tid, want))
                    continue
                if idx[0] <= pos:
                    problems.append("thread %s (%d): %s is not called from the frames after it (order %s)"
                                    % (role, tid, want, funcs))
                pos = idx[0]
                obj = frames[idx[0]][2]
                if not obj.startswith("/") or os.path.realpath(obj) != exe:
                    problems.append("thread %s (%d): frame %s is attributed to %r, expected %s"
                                    % (role, tid, want, obj, exe))
            foreign = sorted(set(funcs) & (ours - set(CHAINS[role])))
            if foreign:
                problems.append("thread %s (%d) shows another thread's functions: %s" % (role, tid, foreign))
        if problems:
            raise TestFailure("`ckpt info --backtrace`:\n  " + "\n  ".join(problems)
                              + "\n  output:\n" + ztlib.indent(text))
        self.step("backtraces: %s" % "; ".join(
            "%s %s" % (role_of[t], " < ".join(f or "??" for _, f, _ in fr[:6])) for t, fr in sorted(bts.items())))

        # the program carries on and passes
        os.kill(pid, signal.SIGTERM)
        try:
            rc = self.prog.proc.wait(timeout=self.deadline.timeout(20))
        except subprocess.TimeoutExpired:
            raise TestFailure("zt_%s did not exit within 20 s of SIGTERM; output:\n%s"
                              % (PROGRAM, ztlib.indent(self.prog.output())))
        self.prog.check_result(ztlib.describe_rc(rc), rc == 0)
        self.step("program passed")
        left = ztlib.descendants()
        if left:
            raise TestFailure("processes left behind: %s" % sorted(left))

    def cleanup(self):
        if self.prog is not None and self.prog.proc.poll() is None:
            self.prog.proc.kill()
            try:
                self.prog.proc.wait(timeout=5)
            except Exception:
                pass
        return ztlib.kill_descendants("cleanup")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ztlib.common_args(ap)
    args = ap.parse_args()
    args.bindir = os.path.abspath(args.bindir)
    args.ckpt = os.path.abspath(args.ckpt)
    ztlib.check_root_and_binary(args)
    ztlib.set_subreaper()
    ztlib.install_signal_handlers()
    run = Run(args)
    log("info/backtrace: start (tmp dir %s)" % run.tmp)
    ok, err = False, None
    try:
        run.run()
        ok = True
    except TestFailure as e:
        err = str(e)
    except BaseException as e:  # interrupted, or a harness bug: still clean up
        err = "harness error: %r" % (e,)
    killed = run.cleanup()
    if ok and killed:
        ok, err = False, "processes were left behind: %s" % killed
    if ok:
        if not args.keep:
            ztlib.remove_tree(run.tmp)
        log("PASS info/backtrace (%.2f s)" % (time.monotonic() - run.t0))
        return 0
    log("FAIL info/backtrace: %s" % err)
    log("  kept for inspection: %s (work/out.log, img/, ckpt-*.out/.err)" % run.tmp)
    return 1


if __name__ == "__main__":
    sys.exit(main())
