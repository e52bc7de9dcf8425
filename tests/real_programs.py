#!/usr/bin/env python3
"""real_programs.py - a failed, killed or interrupted dump leaves REAL programs unharmed.

The fault tests (faults.py, interrupt.py) use the zt_* programs, written for them. This
script checks the same claim on programs a user would run: interpreters and runtimes found
on this machine. Each program appends a counter to WORKDIR/counter.txt about every 10 ms.

  bash         a user's loop: `echo $i >> counter.txt; sleep 0.01`. sleep is a child
               process, so a dump is refused as "has children" unless it freezes bash
               between two sleeps; either way the checks below apply (a refusal is a pass)
  bash-nofork  the same loop waiting with builtins only (no child, so it is not refused)
  python3      a worker thread appends, the main thread waits in join()
  perl         select(undef, undef, undef, 0.01) between appends
  node         setInterval(..., 10) with fs.appendFileSync
  java         a class compiled at test time with javac; Thread.sleep(10) between appends

For one program (one ctest test each, real/NAME):
  1. start it (own session, stdin /dev/null, output to WORKDIR/out.log, no inherited fds)
     and wait until it counts; measure whether its maps/fds change by themselves (a runtime
     with a garbage collector maps and unmaps memory on its own: those parts of the state
     are then not compared, and the output says so);
  2. `ckpt dump --leave-running`: if refused, print "refused: MESSAGE", check the program
     is unharmed (below) and stop: refusing is failing closed, a pass;
  3. otherwise, for every step of `ckpt dump --list-fault-steps` in kill mode (STEP:kill)
     and error mode (STEP; not for kill-only steps), and for SIGINT, SIGTERM, SIGHUP and
     SIGKILL sent to ckpt after delays spread over a measured dump: the program must be
     unharmed (an interrupted ckpt must say `interrupted; process P left running`);
  4. a normal `ckpt dump` (which kills the original) and `ckpt restore -D IMG --detach`:
     the restored program must have the same visible state (normalized as in zdtm.py)
     and keep counting.
At the end counter.txt must read 0, 1, 2, ... with nothing lost, repeated or torn.
"Unharmed": alive, neither traced nor stopped (any thread), visible state equal to before
(ztlib.visible_state; a SIGKILLed ckpt may leave the parasite's region mapped in the
documented windows), and the counter keeps increasing over at least 0.5 s after.
A run where ckpt dies of a signal it was not sent, hangs, or prints more than one error
line is a failure too. No speed is asserted: timeouts only bound waits.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztlib  # noqa: E402
from ztlib import TestFailure, log  # noqa: E402

KILL_LEAKS_REGION = ("bootstrap", "thread-command")
THREAD_ONLY_STEPS = ("thread-command",)  # never reached in a single-threaded program
CMD_TIMEOUT = 60
# Parts of the visible state a program changes by itself all the time, so that a snapshot
# before and one after a dump differ without ckpt having done anything: bash blocks signals
# and installs handlers around every fork and wait; a JVM and V8 map and unmap heap memory.
# More are found by watching the program before the test (Real.start).
VOLATILE = {
    "bash": {"SigBlk", "SigCgt", "threads"},
    "node": {"maps", "vmflags"},
    "java": {"maps", "vmflags"},
}
START_TIMEOUT = 60
PROGRESS_WINDOW = 0.5
SIGNAL_RUNS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL)
N_DELAYS = 4

BASH_SLEEP = 'i=0; while :; do echo $i >> counter.txt; i=$((i+1)); sleep 0.01; done'
# No child: wait on the clock with builtins (a busy wait, but only for this test's duration).
BASH_NOFORK = ('i=0; while :; do echo $i >> counter.txt; i=$((i+1)); '
               'next=$(( ${EPOCHREALTIME/./} + 10000 )); '
               'while (( ${EPOCHREALTIME/./} < next )); do :; done; done')
PYTHON = r'''
import threading, time
def work():
    i = 0
    while True:
        with open("counter.txt", "a") as f:
            f.write("%d\n" % i)
        i += 1
        time.sleep(0.01)
t = threading.Thread(target=work, name="counter")
t.start()
t.join()
'''
PERL = r'''
my $i = 0;
while (1) {
    open(my $f, ">>", "counter.txt") or die "open: $!";
    print $f "$i\n";
    close($f);
    $i++;
    select(undef, undef, undef, 0.01);
}
'''
NODE = r'''
const fs = require("fs");
let i = 0;
setInterval(() => { fs.appendFileSync("counter.txt", i + "\n"); i++; }, 10);
'''
JAVA = r'''
import java.nio.file.*;
public class Counter {
    public static void main(String[] a) throws Exception {
        Path p = Paths.get("counter.txt");
        for (long i = 0;; i++) {
            Files.write(p, (i + "\n").getBytes(), StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            Thread.sleep(10);
        }
    }
}
'''


def programs():
    """{name: (tool needed, prepare(workdir) -> argv)}"""

    def script(argv_prefix, text, fname):
        def prep(work):
            path = os.path.join(work, fname)
            with open(path, "w") as f:
                f.write(text)
            return argv_prefix + [path]
        return prep

    def java_prep(work):
        src = os.path.join(work, "Counter.java")
        with open(src, "w") as f:
            f.write(JAVA)
        res = subprocess.run([shutil.which("javac"), "-d", work, src], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if res.returncode != 0:
            raise TestFailure("javac failed:\n" + ztlib.indent(res.stdout.decode(errors="replace")))
        return [shutil.which("java"), "-Xmx64m", "-cp", work, "Counter"]

    return {
        "bash": ("bash", lambda work: [shutil.which("bash"), "-c", BASH_SLEEP]),
        "bash-nofork": ("bash", lambda work: [shutil.which("bash"), "-c", BASH_NOFORK]),
        "python3": ("python3", script([sys.executable], PYTHON, "counter.py")),
        "perl": ("perl", script([shutil.which("perl") or "perl"], PERL, "counter.pl")),
        "node": ("node", script([shutil.which("node") or "node"], NODE, "counter.js")),
        "java": ("javac", java_prep),
    }


class RealProgram:
    def __init__(self, argv, workdir):
        self.workdir = workdir
        self.counter_path = os.path.join(workdir, "counter.txt")
        self.log_path = os.path.join(workdir, "out.log")
        logfd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self.proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=logfd, stderr=logfd,
                                         close_fds=True, start_new_session=True)
        finally:
            os.close(logfd)
        self.pid = self.proc.pid

    def output(self):
        try:
            return ztlib.read_text(self.log_path)
        except FileNotFoundError:
            return ""

    def counter(self):
        """The last complete value written, or -1."""
        try:
            with open(self.counter_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64))
                tail = f.read().decode(errors="replace")
        except FileNotFoundError:
            return -1
        lines = tail.split("\n")[:-1]  # drop an incomplete last line
        for l in reversed(lines):
            if l.strip().isdigit():
                return int(l.strip())
        return -1


def check_sequence(path):
    """counter.txt must read 0, 1, 2, ... with no value lost, repeated or torn: a system call
    that a cure re-ran or skipped, or a write the program lost, shows here."""
    try:
        lines = ztlib.read_text(path).split("\n")
    except FileNotFoundError:
        return "counter.txt is missing"
    if lines and lines[-1] == "":
        lines.pop()
    else:
        lines = lines[:-1]  # the program may have been killed in the middle of a line
    for i, l in enumerate(lines):
        if l != str(i):
            return "line %d of counter.txt is %r, expected %r (lines %d..%d: %s)" % (
                i + 1, l, str(i), max(0, i - 2) + 1, i + 3, lines[max(0, i - 2):i + 3])
    return None


class Real:
    def __init__(self, args, name):
        self.args = args
        self.name = name
        self.deadline = ztlib.Deadline(args.timeout)
        self.tmp = ztlib.make_tmpdir("real-" + name)
        self.ckpt = ztlib.Ckpt(args.ckpt, self.tmp)
        self.n = 0
        self.prog = None
        self.before = None
        self.drifting = set(VOLATILE.get(name, ()))
        self.counts = {}

    def newdir(self, tag):
        self.n += 1
        d = os.path.join(self.tmp, "%03d-%s" % (self.n, tag))
        os.makedirs(d)
        return d

    # ------------------------------------------------------------------ state

    def alive_or_fail(self, what):
        if self.prog.proc.poll() is not None:
            raise TestFailure("%s: %s died: %s; output:\n%s" % (what, self.name, ztlib.describe_rc(self.prog.proc.returncode),
                                                                ztlib.indent(self.prog.output())))

    def snapshot(self):
        st = ztlib.visible_state(self.prog.pid)
        for k in self.drifting:
            st[k] = None
        return st

    def stable_snapshot(self):
        """A snapshot that is not one of the program's own passing moments (an fd open for
        a write): two in a row that agree."""
        end = time.monotonic() + 5
        prev = self.snapshot()
        while True:
            time.sleep(0.03)
            cur = self.snapshot()
            if not ztlib.compare_state(prev, cur, False) or time.monotonic() > end:
                return cur
            prev = cur

    def wait_progress(self, what, timeout=10):
        """The counter moves again, then keeps moving over PROGRESS_WINDOW."""
        c0 = self.prog.counter()
        end = time.monotonic() + self.deadline.timeout(timeout)
        while self.prog.counter() <= c0:
            self.alive_or_fail(what)
            if time.monotonic() > end:
                raise TestFailure("%s: %s stopped counting (counter stays at %d for %.0f s); output:\n%s"
                                  % (what, self.name, c0, timeout, ztlib.indent(self.prog.output())))
            time.sleep(0.01)
        c1 = self.prog.counter()
        time.sleep(PROGRESS_WINDOW)
        self.alive_or_fail(what)
        c2 = self.prog.counter()
        if c2 <= c1:
            raise TestFailure("%s: %s stopped counting after it resumed (counter %d, then %d %.1f s later)"
                              % (what, self.name, c1, c2, PROGRESS_WINDOW))

    def check_unharmed(self, what, allow_region=False):
        # A target whose ckpt was killed cures itself once the kernel has detached it, which
        # takes a moment: give it up to 5 s (this bounds a wait, it asserts no speed).
        end = time.monotonic() + 5
        while True:
            try:
                self.check_unharmed_now(what, allow_region)
                break
            except TestFailure as e:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        self.wait_progress(what)

    def check_unharmed_now(self, what, allow_region):
        self.alive_or_fail(what)
        bad = ztlib.traced_or_stopped(self.prog.pid)
        if bad:
            raise TestFailure("%s: the program %s" % (what, bad))
        after = self.snapshot()
        extra = []
        if allow_region and "maps" not in self.drifting:
            extra = ztlib.drop_parasite_region(self.before, after)
        problems = ztlib.compare_state(self.before, after, False)
        if problems:
            raise TestFailure("%s: the program changed:\n  %s" % (what, ztlib.state_problems_text(problems)))
        if extra:
            log("    (%s: the parasite's region stayed mapped, as documented: %s)" % (what, extra[0]))
            self.before = self.stable_snapshot()  # the leaked region is now part of it

    # ------------------------------------------------------------------ phases

    def start(self, argv):
        work = self.newdir("work")
        argv = argv(work)
        self.prog = RealProgram(argv, work)
        end = time.monotonic() + self.deadline.timeout(START_TIMEOUT)
        while self.prog.counter() < 3:
            self.alive_or_fail("start")
            if time.monotonic() > end:
                raise TestFailure("%s did not start counting within %d s; output:\n%s"
                                  % (self.name, START_TIMEOUT, ztlib.indent(self.prog.output())))
            time.sleep(0.02)
        time.sleep(0.5)  # "let it run a moment": past its start-up
        # Which parts of the state does the program change by itself? Those cannot show a
        # change made by ckpt; they are left out of every comparison (and this is printed).
        for _ in range(6):
            a = self.stable_snapshot()
            time.sleep(0.25)
            b = self.stable_snapshot()
            self.drifting |= {k for k in a if a[k] != b[k]}
        if self.drifting >= {"maps", "fds"}:
            raise TestFailure("%s changes both its maps and its fds by itself: nothing meaningful to compare"
                              % self.name)
        if self.drifting:
            log("  note: %s changes %s by itself; not compared (the rest is)"
                % (self.name, ", ".join(sorted(self.drifting))))
        self.before = self.stable_snapshot()
        self.nthreads = len(ztlib.visible_state(self.prog.pid)["threads"])
        log("  %s runs as pid %d (%d threads), counting" % (self.name, self.prog.pid, self.nthreads))

    def dump_args(self, img, extra=()):
        return ["dump", "--pid", self.prog.pid, "-o", img, "--leave-running"] + list(extra)

    def probe(self):
        """The plain --leave-running dump: None if it works, else the refusal message."""
        img = self.newdir("probe")
        res = self.ckpt.run(self.dump_args(img), "probe", self.deadline.timeout(CMD_TIMEOUT))
        if res.rc == 0 and not res.timed_out:
            self.check_unharmed("control dump")
            ztlib.remove_tree(img)
            return None, res.elapsed
        ztlib.check_clean_error(res, "%s: the control dump" % self.name)
        # A refusal names the process and what it holds (docs/audit.md); any other error is
        # ckpt failing to dump a program it accepts: a defect, not a refusal.
        if not res.err.startswith("ckpt: error: process %d " % self.prog.pid):
            raise TestFailure("the control dump failed, and not as a refusal: " + res.describe())
        self.check_unharmed("refused dump")
        if os.path.isdir(img) and os.listdir(img):
            raise TestFailure("the refused dump left files in the image directory: %s" % os.listdir(img))
        return res.err.strip(), res.elapsed

    def outcome(self, res, what, sig=None):
        """Classify one interrupted/faulted ckpt: 'killed', 'error', 'completed'; fail on anything else."""
        if res.timed_out:
            raise TestFailure("%s: ckpt hangs: %s" % (what, res.describe()))
        if res.rc == 0:
            return "completed"
        if res.rc == -signal.SIGKILL and sig in (signal.SIGKILL, "kill"):
            return "killed"
        if isinstance(sig, signal.Signals) and res.rc == -sig and not res.err.strip():
            return "killed"  # the signal came before ckpt installed its handler
        ztlib.check_clean_error(res, what)
        return "error"

    def fault(self, step, kill):
        spec = step + (":kill" if kill else "")
        what = "%s --fault-inject %s" % (self.name, spec)
        img = self.newdir("img")
        res = self.ckpt.run(self.dump_args(img, ["--fault-inject", spec]), "fault",
                            self.deadline.timeout(CMD_TIMEOUT))
        out = self.outcome(res, what, "kill" if kill else None)
        if out == "completed":
            raise TestFailure("%s: the dump succeeded although the step was to fail" % what)
        if kill and out != "killed":
            # Refused before the step was reached (e.g. the program had a child at that moment).
            out = "refused before the step: " + res.err.strip()
        elif not kill:
            out = "error: " + res.err.strip()
        self.check_unharmed(what, allow_region=kill and step in KILL_LEAKS_REGION)
        if kill:
            info = self.ckpt.run(["info", img], "info", self.deadline.timeout(CMD_TIMEOUT))
            if info.rc == 0:
                raise TestFailure("%s: `ckpt info` accepts the image of a killed dump" % what)
        ztlib.remove_tree(img)
        return out

    def interrupt(self, sig, delay):
        what = "%s %s after %.0f ms" % (self.name, signal.Signals(sig).name, delay * 1000)
        img = self.newdir("img")
        started = self.ckpt.start(self.dump_args(img), "sig")
        time.sleep(delay)
        try:
            started[0].send_signal(sig)
        except ProcessLookupError:
            pass
        res = self.ckpt.finish(started, self.deadline.timeout(CMD_TIMEOUT))
        out = self.outcome(res, what, sig)
        if out == "error":
            want = "ckpt: error: interrupted; process %d left running" % self.prog.pid
            if res.err.strip() != want and "refused" not in res.err and "not supported" not in res.err:
                raise TestFailure("%s: expected %r, got %s" % (what, want, res.describe()))
        if out == "completed":
            info = self.ckpt.run(["info", img], "info", self.deadline.timeout(CMD_TIMEOUT))
            if info.rc != 0:
                raise TestFailure("%s: ckpt succeeded but its image is not complete: %s" % (what, info.describe()))
        self.check_unharmed(what, allow_region=(out == "killed"))
        ztlib.remove_tree(img)
        return out

    def round_trip(self):
        img = self.newdir("final")
        pid = self.prog.pid
        res = self.ckpt.run(["dump", "--pid", pid, "-o", img], "dump", self.deadline.timeout(CMD_TIMEOUT))
        if res.timed_out or res.rc != 0:
            ztlib.check_clean_error(res, "%s: the final dump" % self.name)
            # Refused now although the probe worked (a program with a child now and then):
            self.check_unharmed("final dump refused")
            return "final dump refused: " + res.err.strip()
        try:
            rc = self.prog.proc.wait(timeout=self.deadline.timeout(20))
        except subprocess.TimeoutExpired:
            raise TestFailure("the original is still alive 20 s after a dump without --leave-running")
        if rc >= 0:
            raise TestFailure("the original exited by itself (%s); output:\n%s"
                              % (ztlib.describe_rc(rc), ztlib.indent(self.prog.output())))
        ztlib.reap_nohang()
        res = self.ckpt.run(["restore", "-D", img, "--detach"], "restore", self.deadline.timeout(CMD_TIMEOUT))
        if res.timed_out or res.rc != 0:
            raise TestFailure("ckpt restore --detach failed: " + res.describe())
        if not ztlib.pid_running(pid):
            raise TestFailure("after `ckpt restore --detach` returned, pid %d is not running" % pid)
        bad = ztlib.traced_or_stopped(pid)
        if bad:
            raise TestFailure("after `ckpt restore --detach`: " + bad)
        # The restored program resumes where the dump froze it, which may be inside a
        # moment of its own where its state differs (bash's `>>` moves fd 1 for the echo,
        # the others open counter.txt): a difference must last to count.
        end = time.monotonic() + 5
        while True:
            problems = ztlib.compare_state(self.before, self.snapshot(), True)
            if not problems:
                break
            if time.monotonic() > end:
                raise TestFailure("the restored program differs from the original (for 5 s):\n  "
                                  + ztlib.state_problems_text(problems))
            time.sleep(0.02)
        c0 = self.prog.counter()

        class Restored:  # poll() for alive_or_fail: the restored pid is our child (subreaper)
            returncode = None

            def poll(self_):
                if ztlib.pid_running(pid):
                    return None
                st = ztlib.wait_pid_exit(pid, 1)
                if st is None:
                    self_.returncode = -1
                elif os.WIFSIGNALED(st):
                    self_.returncode = -os.WTERMSIG(st)
                else:
                    self_.returncode = os.WEXITSTATUS(st)
                return self_.returncode
        self.prog.proc = Restored()
        self.wait_progress("after restore")
        c1 = self.prog.counter()
        if c1 <= c0:
            raise TestFailure("the restored program does not count on (counter %d, then %d)" % (c0, c1))
        os.kill(pid, signal.SIGKILL)
        ztlib.wait_pid_exit(pid, self.deadline.timeout(20))
        return "restored, counts on (%d -> %d)" % (c0, c1)

    def finish(self):
        # The program leads its own process group (own session): kill it with whatever
        # child it has at the moment (bash's sleep).
        if self.prog is not None:
            try:
                os.killpg(self.prog.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if isinstance(self.prog.proc, subprocess.Popen):
                self.prog.proc.wait()
            time.sleep(0.1)
            ztlib.reap_nohang()


def main():
    progs = programs()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ztlib.common_args(ap)
    ap.add_argument("program", choices=sorted(progs))
    args = ap.parse_args()
    args.ckpt = os.path.abspath(args.ckpt)
    ztlib.check_root_and_binary(args)
    tool, prep = progs[args.program]
    if shutil.which(tool) is None:
        log("SKIP real/%s: %s is not installed" % (args.program, tool))
        return 77
    ztlib.set_subreaper()
    ztlib.install_signal_handlers()
    r = Real(args, args.program)
    t0 = time.monotonic()
    log("real/%s: start (tmp dir %s)" % (args.program, r.tmp))
    failures = []
    try:
        lst = r.ckpt.run(["dump", "--list-fault-steps"], "list-steps", r.deadline.timeout(CMD_TIMEOUT))
        if lst.timed_out or lst.rc != 0:
            raise TestFailure("`ckpt dump --list-fault-steps` failed: " + lst.describe())
        steps = [(w[0], len(w) > 1 and w[1] == "kill-only") for w in (l.split() for l in lst.out.splitlines()) if w]
        if not steps:
            raise TestFailure("`ckpt dump --list-fault-steps` printed no steps")
        missing = [s for s in KILL_LEAKS_REGION if s not in [n for n, _ in steps]]
        if missing:
            raise TestFailure("ckpt no longer lists steps this test knows: %s" % missing)
        r.start(prep)
        refused, took = r.probe()
        if refused is not None:
            log("  refused: %s" % refused)
            log("  %s is unharmed by the refusal (alive, untraced, same state, still counting)" % args.program)
        else:
            log("  control dump --leave-running works (%.0f ms); %s unharmed" % (took * 1000, args.program))
            threaded = r.nthreads > 1
            for step, kill_only in steps:
                if step in THREAD_ONLY_STEPS and not threaded:
                    log("  skip %-26s %s is single-threaded" % (step, args.program))
                    continue
                for kill in ((True,) if kill_only else (True, False)):
                    spec = step + (":kill" if kill else "")
                    try:
                        out = r.fault(step, kill)
                        log("  ok   %-26s %s" % (spec, out))
                    except TestFailure as e:
                        failures.append("%s: %s" % (spec, e))
                        log("  FAIL %-26s %s" % (spec, str(e).replace("\n", "\n       ")))
                        if r.prog.proc.poll() is not None:
                            raise TestFailure("the program is gone; stopping")
                        r.before = r.stable_snapshot()  # go on from here, to find more
            delays = [0.001] + [took * i / (N_DELAYS - 1) for i in range(1, N_DELAYS)]
            for sig in SIGNAL_RUNS:
                for delay in delays:
                    spec = "%s@%.0fms" % (signal.Signals(sig).name, delay * 1000)
                    try:
                        out = r.interrupt(sig, delay)
                        log("  ok   %-26s %s" % (spec, out))
                    except TestFailure as e:
                        failures.append("%s: %s" % (spec, e))
                        log("  FAIL %-26s %s" % (spec, str(e).replace("\n", "\n       ")))
                        if r.prog.proc.poll() is not None:
                            raise TestFailure("the program is gone; stopping")
                        r.before = r.stable_snapshot()
            if not failures:
                log("  ok   %-26s %s" % ("dump + restore", r.round_trip()))
    except TestFailure as e:
        failures.append(str(e))
        log("  FAIL %s" % str(e).replace("\n", "\n       "))
    except BaseException as e:
        failures.append("harness error: %r" % (e,))
        log("  FAIL harness error: %r" % (e,))
    r.finish()
    if r.prog is not None:
        bad = check_sequence(r.prog.counter_path)
        if bad:
            failures.append("the program's output is damaged: " + bad)
            log("  FAIL the program's output is damaged: " + bad)
        else:
            log("  counter.txt reads 0..%d without a gap, repeat or torn line" % r.prog.counter())
    killed = ztlib.kill_descendants("real cleanup")
    if killed:
        failures.append("processes left behind: %s" % killed)
    if failures:
        log("FAIL real/%s: %d failures; kept %s" % (args.program, len(failures), r.tmp))
        for f in failures:
            log("  - " + f.split("\n")[0])
        return 1
    ztlib.remove_tree(r.tmp)
    log("PASS real/%s (%.1f s)" % (args.program, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
