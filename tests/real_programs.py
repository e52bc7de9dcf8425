#!/usr/bin/env python3
"""real_programs.py - a failed, killed or interrupted dump leaves REAL programs unharmed.

The fault tests (faults.py, interrupt.py) use the zt_* programs, written for them. This
script checks the same claim on programs a user would run: interpreters and runtimes found
on this machine. Each program appends a counter to WORKDIR/counter.txt about every 10 ms.
A dump takes the program with all its descendants (its tree).

  bash         a user's loop: `echo $i >> counter.txt; sleep 0.01`. Each sleep is a child
               that lives 10 ms: a dump freezes bash with the sleep it has at that moment
               (or none), and a restore brings both back. These children come and go by
               themselves, so bash's tree is not compared (STABLE_TREE_DEPTH), bash is
  bash-nofork  the same loop waiting with builtins only (no child at all)
  bash-pipeline  `while :; do echo $i; i=$((i+1)); sleep 0.01; done |
               (while read x; do echo $x >> counter.txt; done)`: bash and two subshells,
               one writing the counter into a pipe, one appending what it reads; the pipe
               (with the lines buffered in it) is inside the tree. The two subshells are
               compared; the sleeps under the first one are not (they come and go)
  script       util-linux `script -q -c LOOP /dev/null`: script holds the master of a pty
               pair, its child (the shell running LOOP, which appends the counter and
               prints "tick N" to the terminal) leads a session whose controlling terminal
               is the slave; script copies what comes out of the master to out.log. The
               loop's sleeps come and go (only script and the shell are compared)
  tail-f       `tail -f src.txt >> counter.txt` (inotify on src.txt) with its child, a
               subshell appending the counter to src.txt: what tail copies must keep
               coming, after restore too, with nothing lost or repeated
  python3      a worker thread appends, the main thread waits in join()
  python-subprocess  python3 starts a child python3 with subprocess.Popen(stdout=PIPE)
               and appends each line of the child's counter as it reads it (the child
               writes a line and sleeps 10 ms)
  python-multiprocessing  multiprocessing.Pool(2) (the default start method: fork)
               squares each counter value in a worker (pool.apply), the parent checks the
               result and appends the value: two workers, pipes between them and the parent
               (Pool's queues), and Pool's locks, POSIX semaphores that live in unlinked
               /dev/shm files mapped by every process (ckpt recreates such a deleted file
               once for the whole tree, so the semaphores stay shared)
  python-http-server  http.server's ThreadingHTTPServer on 127.0.0.1 (a listening TCP
               socket) served by a thread while the main thread counts and, every 100
               values, fetches a page from it (a dump in that moment meets an established
               connection and is refused: failing closed)
  perl         select(undef, undef, undef, 0.01) between appends
  node         setInterval(..., 10) with fs.appendFileSync
  java         a class compiled at test time with javac; Thread.sleep(10) between appends
  ruby         a worker thread appends, sleep 0.01; the main thread waits in join()
  go           built at test time with `go build` (static, no cgo): a goroutine with a
               time.Ticker hands values over a channel, another keeps re-arming a timer

For one program (one ctest test each, real/NAME):
  1. start it (own session, stdin /dev/null, output to WORKDIR/out.log, no inherited fds)
     and wait until it counts; measure whether its maps/fds change by themselves (a runtime
     with a garbage collector maps and unmaps memory on its own: those parts of the state
     are then not compared, and the output says so; the same for each part of the state of
     the processes of its tree, "tree:KEY"). The visible state includes the tree
     (ztlib.visible_state(pid, tree=True)): the set of descendants, their parents, groups,
     sessions, maps, fds and signal state, down to STABLE_TREE_DEPTH for a program whose
     deeper children come and go by themselves; a program of TREE_MIN must have at least
     that many descendants compared, and the set of them must not change by itself;
  2. `ckpt dump --leave-running`: if refused (one line naming a process of the tree, as
     docs/audit.md says), print "refused: MESSAGE", check the program is unharmed (below)
     and stop: refusing is failing closed, a pass;
  3. otherwise, for every step of `ckpt dump --list-fault-steps` in kill mode (STEP:kill)
     and error mode (STEP; not for kill-only steps), and for SIGINT, SIGTERM, SIGHUP and
     SIGKILL sent to ckpt after delays spread over a measured dump: the program must be
     unharmed (an interrupted ckpt must say `interrupted; process P left running`);
  4. a normal `ckpt dump` (which kills the original tree: every process of it must be gone
     before the restore, which takes their pids again) and `ckpt restore -D IMG --detach`:
     the restored program and its tree must have the same visible state (normalized as in
     zdtm.py), no process of it traced or stopped, and keep counting.
At the end counter.txt must read 0, 1, 2, ... with nothing lost, repeated or torn.
"Unharmed": alive, neither traced nor stopped (any thread, any process of the tree), visible
state with the tree equal to before (ztlib.visible_state; a SIGKILLed ckpt may leave the
parasite's region mapped in the documented windows, in the program or in the one process
of its tree it was infecting), and the counter keeps increasing over at least 0.5 s after.
A run where ckpt dies of a signal it was not sent, hangs, or prints more than one error
line is a failure too. No speed is asserted: timeouts only bound waits.
"""

import argparse
import os
import re
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
# and installs handlers around every fork and wait; a JVM and V8 map and unmap heap memory;
# the Go runtime starts a thread (an M) when one has been stuck in a system call for a
# while, which any pause of the process, a frozen dump included, brings about.
# More are found by watching the program before the test (Real.start).
VOLATILE = {
    "bash": {"SigBlk", "SigCgt", "threads"},
    "bash-pipeline": {"tree:SigBlk", "tree:SigCgt"},  # the counting subshell forks sleeps
    "tail-f": {"tree:SigBlk", "tree:SigCgt"},  # the same for its writing subshell
    "script": {"tree:SigBlk", "tree:SigCgt"},  # its shell forks a sleep per value
    "node": {"maps", "vmflags"},
    "java": {"maps", "vmflags"},
    "go": {"threads"},
    "ruby": {"maps", "vmflags"},  # its worker thread's malloc arena grows now and then
}
# Programs whose children come and go by themselves (a `sleep` per step of a loop): only
# the processes of the tree down to this depth are compared (1: the program's children; 0:
# no tree). The whole tree of every other program is compared.
STABLE_TREE_DEPTH = {"bash": 0, "bash-pipeline": 1, "tail-f": 1, "script": 1}
# Tree programs: at least this many descendants must be compared (else the test would not
# be testing a tree).
TREE_MIN = {"script": 1, "tail-f": 1, "bash-pipeline": 2, "python-subprocess": 1, "python-multiprocessing": 2}
START_TIMEOUT = 60
PROGRESS_WINDOW = 0.5
SIGNAL_RUNS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL)
N_DELAYS = 4

BASH_SLEEP = 'i=0; while :; do echo $i >> counter.txt; i=$((i+1)); sleep 0.01; done'
# No child: wait on the clock with builtins (a busy wait, but only for this test's duration).
BASH_NOFORK = ('i=0; while :; do echo $i >> counter.txt; i=$((i+1)); '
               'next=$(( ${EPOCHREALTIME/./} + 10000 )); '
               'while (( ${EPOCHREALTIME/./} < next )); do :; done; done')
BASH_PIPELINE = ('i=0; while :; do echo $i; i=$((i+1)); sleep 0.01; done | '
                 '(while read x; do echo $x >> counter.txt; done)')
SCRIPT_LOOP = 'i=0; while :; do echo $i >> counter.txt; echo tick $i; i=$((i+1)); sleep 0.01; done'
# tail follows src.txt (inotify) into counter.txt while its child, a subshell, appends to
# src.txt; tail was exec'd by the shell that started the subshell, so it is its parent.
TAIL_F = (': > src.txt; (i=0; while :; do echo $i >> src.txt; i=$((i+1)); sleep 0.01; done) & '
          'exec tail -n +1 -f src.txt >> counter.txt')
# An HTTP server (a listening TCP socket, served by a thread) while the main thread counts;
# once a second the main thread fetches a page from it and stops counting if that fails.
PY_HTTP_SERVER = r'''
import http.server, threading, time, urllib.request
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=srv.serve_forever, daemon=True).start()
url = "http://127.0.0.1:%d/counter.txt" % srv.server_address[1]
i = 0
while True:
    with open("counter.txt", "a") as f:
        f.write("%d\n" % i)
    i += 1
    if i % 100 == 0:
        urllib.request.urlopen(url, timeout=5).read()
    time.sleep(0.01)
'''
PY_SUBPROCESS = r'''
import subprocess, sys
CHILD = """
import sys, time
i = 0
while True:
    sys.stdout.write("%d\\n" % i)
    sys.stdout.flush()
    i += 1
    time.sleep(0.01)
"""
child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE)
for line in child.stdout:
    with open("counter.txt", "ab") as f:
        f.write(line)
sys.exit("the child's output ended: %s" % child.wait())
'''
PY_MULTIPROCESSING = r'''
import multiprocessing, sys, time

def square(x):
    return x * x

if __name__ == "__main__":
    with multiprocessing.Pool(2) as pool:
        i = 0
        while True:
            r = pool.apply(square, (i,))
            if r != i * i:
                sys.exit("the pool computed %r for %d" % (r, i))
            with open("counter.txt", "a") as f:
                f.write("%d\n" % i)
            i += 1
            time.sleep(0.01)
'''
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
RUBY = r'''
# a worker thread appends; the main thread waits in join (ruby's timer thread, eventfd)
i = 0
t = Thread.new do
  loop do
    File.open("counter.txt", "a") { |f| f.write("#{i}\n") }
    i += 1
    sleep 0.01
  end
end
t.join
'''
GO = r'''
// goroutines and timers: a ticker goroutine hands each value over a channel to main,
// which appends it; a second goroutine keeps a timer re-armed (the runtime's timers and
// netpoller: epoll, a pipe or eventfd, signals on every thread)
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	values := make(chan int)
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		for i := 0; ; i++ {
			<-t.C
			values <- i
		}
	}()
	go func() {
		for {
			timer := time.NewTimer(3 * time.Millisecond)
			<-timer.C
		}
	}()
	for v := range values {
		f, err := os.OpenFile("counter.txt", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0644)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(f, "%d\n", v)
		f.Close()
	}
}
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

    def go_prep(work):
        src = os.path.join(work, "counter.go")
        with open(src, "w") as f:
            f.write(GO)
        env = dict(os.environ, GOCACHE=os.path.join(work, ".gocache"), GOPATH=os.path.join(work, ".gopath"),
                   GO111MODULE="off", CGO_ENABLED="0")
        res = subprocess.run([shutil.which("go"), "build", "-o", os.path.join(work, "counter"), src], cwd=work,
                             env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=300)
        if res.returncode != 0:
            raise TestFailure("go build failed:\n" + ztlib.indent(res.stdout.decode(errors="replace")))
        return [os.path.join(work, "counter")]

    return {
        "bash": ("bash", lambda work: [shutil.which("bash"), "-c", BASH_SLEEP]),
        "bash-nofork": ("bash", lambda work: [shutil.which("bash"), "-c", BASH_NOFORK]),
        "bash-pipeline": ("bash", lambda work: [shutil.which("bash"), "-c", BASH_PIPELINE]),
        "tail-f": ("tail", lambda work: [shutil.which("bash"), "-c", TAIL_F]),
        "script": ("script", lambda work: [shutil.which("script"), "-q", "-c", SCRIPT_LOOP, "/dev/null"]),
        "python3": ("python3", script([sys.executable], PYTHON, "counter.py")),
        "python-subprocess": ("python3", script([sys.executable], PY_SUBPROCESS, "counter.py")),
        "python-multiprocessing": ("python3", script([sys.executable], PY_MULTIPROCESSING, "counter.py")),
        "python-http-server": ("python3", script([sys.executable], PY_HTTP_SERVER, "counter.py")),
        "perl": ("perl", script([shutil.which("perl") or "perl"], PERL, "counter.pl")),
        "node": ("node", script([shutil.which("node") or "node"], NODE, "counter.js")),
        "java": ("javac", java_prep),
        "ruby": ("ruby", script([shutil.which("ruby") or "ruby"], RUBY, "counter.rb")),
        "go": ("go", go_prep),
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
        self.tree_depth = STABLE_TREE_DEPTH.get(name)  # None: the whole tree
        self.threaded = False

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
        for attempt in range(100):
            try:
                st = ztlib.visible_state(self.prog.pid, tree=self.tree_depth != 0)
                break
            except TestFailure:
                # A passing child (bash's sleep) exited while the tree was read: read again.
                if attempt == 99 or not ztlib.pid_running(self.prog.pid):
                    raise
                time.sleep(0.01)
        if "tree" in st:
            st["tree"] = self.stable_tree(st["tree"])
        for k in self.drifting:
            if k.startswith("tree:"):
                for e in st["tree"].values():
                    if k[5:] in e:
                        e[k[5:]] = None
            else:
                st[k] = None
        return st

    def stable_tree(self, tree):
        """The processes of a tree_state snapshot down to self.tree_depth."""
        if self.tree_depth is None:
            return tree
        root = self.prog.pid

        def depth(pid):
            d = 0
            while pid != root:
                e = tree.get(pid)
                if e is None or d > len(tree):
                    return len(tree) + 1
                pid, d = e["ppid"], d + 1
            return d
        return {p: e for p, e in tree.items() if depth(p) <= self.tree_depth}

    def tree_pids(self):
        """The pids of the program's tree as far as it is known: at the snapshot and now."""
        pids = {self.prog.pid} | ztlib.descendants(self.prog.pid)
        if self.before is not None:
            pids |= set(self.before.get("tree") or {})
        return pids

    def is_refusal(self, err):
        """A refusal names a process of the tree: `ckpt: error: process N ...` or `processes N
        and M ...` (docs/audit.md). A pid that no longer exists was a passing child."""
        m = re.match(r"ckpt: error: process(?:es)? (\d+)\b", err.strip())
        if not m:
            return False
        pid = int(m.group(1))
        return pid in self.tree_pids() or not ztlib.pid_exists(pid)

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
        if allow_region:
            # The region appears only once the detached target has run the remote mmap it
            # was stopped in, a moment after the detach: checked too early, the state looks
            # unharmed and the region shows up in the next case's comparison.
            while ztlib.traced_or_stopped(self.prog.pid) and time.monotonic() < end:
                time.sleep(0.02)
            time.sleep(0.3)
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
        if allow_region:
            b, a = self.before, after
            if "maps" in self.drifting:  # not compared; the tree's maps may be (a["tree"] is shared)
                b, a = dict(b, maps=[]), dict(a, maps=[])
            extra = ztlib.drop_parasite_regions(b, a)
        problems = ztlib.compare_state(self.before, after, False)
        if "tree" in after:
            problems += ztlib.tree_traced_or_stopped(after["tree"])
        if problems:
            raise TestFailure("%s: the program changed:\n  %s" % (what, ztlib.state_problems_text(problems)))
        if extra:
            log("    (%s: the parasite's region stayed mapped, as documented: %s)"
                % (what, "; ".join("%s: %s" % e for e in extra)))
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
            self.drifting |= {k for k in a if k != "tree" and a[k] != b[k]}
            if "tree" in a:
                ta, tb = a["tree"], b["tree"]
                if set(ta) != set(tb):
                    raise TestFailure("the processes of the tree of %s change by themselves (%s, then %s): "
                                      "nothing stable to compare (see STABLE_TREE_DEPTH)"
                                      % (self.name, sorted(ta), sorted(tb)))
                self.drifting |= {"tree:" + k for p in ta for k in ta[p] if ta[p][k] != tb[p].get(k)}
        if self.drifting >= {"maps", "fds"}:
            raise TestFailure("%s changes both its maps and its fds by itself: nothing meaningful to compare"
                              % self.name)
        if self.drifting:
            log("  note: %s changes %s by itself; not compared (the rest is)"
                % (self.name, ", ".join(sorted(self.drifting))))
        self.before = self.stable_snapshot()
        tree = self.before.get("tree")
        if tree is not None and len(tree) < TREE_MIN.get(self.name, 0):
            raise TestFailure("%s has %d descendants to compare, expected at least %d: %s"
                              % (self.name, len(tree), TREE_MIN[self.name],
                                 [ztlib.tree_entry_text(p, e) for p, e in sorted(tree.items())]))
        # thread-command fires in the first multi-threaded process of the tree ckpt infects
        nthreads = {}
        for p in sorted(self.tree_pids()):
            try:
                nthreads[p] = len(os.listdir("/proc/%d/task" % p))
            except OSError:
                pass  # a passing child
        self.threaded = any(n > 1 for n in nthreads.values())
        log("  %s runs as pid %d (%d threads), counting" % (self.name, self.prog.pid, nthreads.get(self.prog.pid, 0)))
        if tree:
            log("  its tree (compared): %s" % "; ".join(
                "%s, %d threads" % (ztlib.tree_entry_text(p, e), nthreads.get(p, 0)) for p, e in sorted(tree.items())))
        elif tree is None:
            log("  its children (if any) come and go by themselves: its tree is not compared")

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
        # A refusal names a process of the tree and what it holds (docs/audit.md); any other
        # error is ckpt failing to dump a program it accepts: a defect, not a refusal.
        if not self.is_refusal(res.err):
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
            # Refused before the step was reached: the audit found state it refuses at that
            # moment (e.g. a child between vfork() and exec). Any other error is a defect.
            if not self.is_refusal(res.err):
                raise TestFailure("%s: ckpt neither reached the step nor refused the dump: %s" % (what, res.describe()))
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
            if res.err.strip() != want and not self.is_refusal(res.err):
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
            # Refused now although the probe worked (state the audit refuses, held for a
            # moment, e.g. a child between vfork() and exec):
            if not self.is_refusal(res.err):
                raise TestFailure("the final dump failed, and not as a refusal: " + res.describe())
            self.check_unharmed("final dump refused")
            return "final dump refused: " + res.err.strip()
        try:
            rc = self.prog.proc.wait(timeout=self.deadline.timeout(20))
        except subprocess.TimeoutExpired:
            raise TestFailure("the original is still alive 20 s after a dump without --leave-running")
        if rc >= 0:
            raise TestFailure("the original exited by itself (%s); output:\n%s"
                              % (ztlib.describe_rc(rc), ztlib.indent(self.prog.output())))
        # The dump killed the whole tree; the orphans of the original are ours (subreaper),
        # and nothing else is: all must be gone (reaped) before the restore takes their pids.
        left = ztlib.wait_gone(ztlib.descendants(), self.deadline.timeout(10))
        if left:
            raise TestFailure("processes of the original tree still exist 10 s after a dump without "
                              "--leave-running (it must kill the whole tree): %s" % left)
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
            after = self.snapshot()
            problems = ztlib.compare_state(self.before, after, True)
            if "tree" in after:
                problems += ztlib.tree_traced_or_stopped(after["tree"])
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
        os.killpg(pid, signal.SIGKILL)  # with its tree (restored in its process group)
        ztlib.wait_pid_exit(pid, self.deadline.timeout(20))
        n = len(after.get("tree") or {})
        return "restored%s, counts on (%d -> %d)" % (" with its tree of %d" % n if n else "", c0, c1)

    def finish(self):
        # The program leads its own process group (own session): kill it with its whole
        # tree (whatever children it has at the moment), and reap the orphans.
        if self.prog is not None:
            try:
                os.killpg(self.prog.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if isinstance(self.prog.proc, subprocess.Popen):
                self.prog.proc.wait()
            ztlib.wait_gone(ztlib.descendants(), 5)


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
            threaded = r.threaded
            for step, kill_only in steps:
                if step in THREAD_ONLY_STEPS and not threaded:
                    log("  skip %-26s %s is single-threaded (every process of its tree)" % (step, args.program))
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
        import traceback
        traceback.print_exc()
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
