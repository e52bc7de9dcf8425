#!/usr/bin/env python3
"""external_pipes.py - pipes between the dumped tree and processes outside it.

The subject is zt_echo_seq (tests/programs/echo_seq.c), a filter between two pipes the
harness holds: it writes "1", "2", ... into the program's stdin, one line every couple of
milliseconds from a thread, and reads the replies "K N" from its stdout in another. Both
pipes are held outside the dumped tree, so the image records them as external, without
their bytes (they stay in the pipes). The dump comes while lines flow; the writer keeps
writing through the dump and the restore. Each case then checks the whole conversation:
every line answered once, in order, the program's own count going on ("K" = N), and the
final "EOF TOTAL" after the harness closes the program's input.

Cases:
  stdio-same    dump (kills), restore with --inherit-stdio, ckpt restore's stdin and stdout
                being the same two pipes: nothing lost.
  inherit-fd    the same with --inherit-fd fd[47]:pipe:[IN] --inherit-fd fd[48]:pipe:[OUT], the
                pipes at fds 47 and 48 of ckpt restore, its own stdin and stdout elsewhere.
  leave-running dump --leave-running: the program goes on with nothing consumed, and
                `ckpt info` marks both pipes external.
  missing       a restore given neither option is refused with one line naming the process,
                fd 0, its pipe and --inherit-fd, leaves nothing behind, and the image still
                restores with --inherit-stdio.
  new-pipes     restore onto new pipes (the `| tee` died and a new one reads): the program's
                count goes on from the last line it answered on the old pipe.
  tree          `sh -c 'zt_echo_seq | cat; echo sh-done'` (an inner pipe, the outer ones
                external at different processes): restored with --inherit-stdio, sh goes on.
  fifo-stdin    stdin is a FIFO the harness holds open: reopened by its path at restore, it is
                the same pipe, bytes in it included; stdout via --inherit-stdio.
"""

import os
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztlib  # noqa: E402
from ztlib import TestFailure, log  # noqa: E402

CMD_TIMEOUT = 30
INTERVAL = 0.002


def pipe_ino(fd):
    return os.fstat(fd).st_ino


class Writer:
    """Writes consecutive numbers from `first`, one line per INTERVAL, into fd."""

    def __init__(self, fd, first=1):
        self.fd = fd
        self.next = first
        self.stop_ev = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self.stop_ev.is_set():
                os.write(self.fd, b"%d\n" % self.next)
                self.next += 1
                time.sleep(INTERVAL)
        except OSError as e:
            self.error = e

    def stop(self, reader_may_be_gone=False):
        """Stops writing; returns the last number written."""
        self.stop_ev.set()
        self.thread.join(10)
        if self.thread.is_alive():
            raise TestFailure("the writer is stuck: the program stopped reading its stdin")
        if self.error and not (reader_may_be_gone and isinstance(self.error, BrokenPipeError)):
            raise TestFailure("writing the program's stdin failed: %s" % self.error)
        return self.next - 1


class Reader:
    """Collects the lines read from fd until end of file."""

    def __init__(self, fd):
        self.fd = fd
        self.data = b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            b = os.read(self.fd, 65536)
            if not b:
                return
            self.data += b

    def lines(self, timeout):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TestFailure("the program's stdout did not reach end of file")
        os.close(self.fd)
        return self.data.decode(errors="replace").splitlines()


def check_conversation(lines, sent, first_count=1, first_value=1, trailer=()):
    """lines must be "K N" for K from first_count and N from first_value, one per number
    sent (the last being `sent`), then "EOF K", then `trailer`."""
    want = ["%d %d" % (first_count + i, first_value + i) for i in range(sent - first_value + 1)]
    want.append("EOF %d" % (first_count + sent - first_value))
    want += list(trailer)
    if lines != want:
        for i, (a, b) in enumerate(zip(lines, want)):
            if a != b:
                raise TestFailure("line %d is %r, expected %r (of %d lines, %d expected)" % (i + 1, a, b, len(lines),
                                                                                          len(want)))
        raise TestFailure("%d lines, expected %d; last ones: %r, expected %r" % (len(lines), len(want), lines[-3:],
                                                                                want[-3:]))


class Ctx:
    def __init__(self, args, name):
        self.args = args
        self.deadline = ztlib.Deadline(args.timeout)
        self.tmp = ztlib.make_tmpdir("extpipe-" + name)
        self.img = os.path.join(self.tmp, "img")
        self.ckpt = ztlib.Ckpt(args.ckpt, self.tmp)
        self.procs = []
        self.t0 = time.monotonic()
        self.exe = os.path.join(args.bindir, "zt_echo_seq")

    def step(self, msg):
        log("  [%6.2f s] %s" % (time.monotonic() - self.t0, msg))

    def start(self, argv, stdin, stdout, pass_fds=()):
        err = open(os.path.join(self.tmp, "prog-%d.err" % len(self.procs)), "wb")
        p = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=err, close_fds=True, pass_fds=pass_fds)
        err.close()
        self.procs.append(p)
        return p

    def dump(self, pid, extra=()):
        res = self.ckpt.run(["dump", "--pid", pid, "-o", self.img] + list(extra), "dump",
                            self.deadline.timeout(CMD_TIMEOUT))
        if res.timed_out or res.rc != 0:
            raise TestFailure("dump failed: " + res.describe())
        self.step("dumped pid %d %s" % (pid, " ".join(extra)))

    def restore(self, extra, stdin, stdout, pass_fds=()):
        err = os.path.join(self.tmp, "restore.err")
        with open(err, "wb") as e:
            p = subprocess.Popen([self.args.ckpt, "restore", "-D", self.img] + list(extra), stdin=stdin,
                                 stdout=stdout, stderr=e, close_fds=True, pass_fds=pass_fds)
        self.procs.append(p)
        self.step("ckpt restore %s started" % " ".join(extra))
        return p, err

    def wait_restore(self, started):
        p, err = started
        try:
            rc = p.wait(self.deadline.timeout(CMD_TIMEOUT))
        except subprocess.TimeoutExpired:
            raise TestFailure("ckpt restore did not finish after the program's input ended")
        if rc != 0:
            raise TestFailure("ckpt restore exited %s: %s" % (ztlib.describe_rc(rc), ztlib.read_text(err)))

    def wait_dead(self, proc, pid):
        try:
            proc.wait(self.deadline.timeout(10))
        except subprocess.TimeoutExpired:
            raise TestFailure("process %d still alive after the dump" % pid)
        ztlib.wait_gone([pid], self.deadline.timeout(10))

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        return ztlib.kill_descendants("external_pipes cleanup")


class Pipes:
    """The program's stdin and stdout pipes; the harness keeps all four ends until the
    restore holds what it needs."""

    def __init__(self):
        self.in_r, self.in_w = os.pipe()
        self.out_r, self.out_w = os.pipe()

    def close_program_ends(self):
        for fd in (self.in_r, self.out_w):
            os.close(fd)


def run_filter(ctx, pipes):
    prog = ctx.start([ctx.exe], pipes.in_r, pipes.out_w)
    writer = Writer(pipes.in_w)
    reader = Reader(pipes.out_r)
    time.sleep(0.3)
    return prog, writer, reader


def finish(ctx, restore, pipes, writer, reader, **expect):
    time.sleep(0.3)
    sent = writer.stop()
    os.close(pipes.in_w)
    if restore is not None:
        ctx.wait_restore(restore)
    check_conversation(reader.lines(ctx.deadline.timeout(10)), sent, **expect)
    ctx.step("%d lines answered in order" % sent)


def restore_same_pipes(ctx, pipes, writer, reader, extra=("--inherit-stdio",)):
    restore = ctx.restore(list(extra), pipes.in_r, pipes.out_w)
    pipes.close_program_ends()
    finish(ctx, restore, pipes, writer, reader)


def case_stdio_same(ctx):
    pipes = Pipes()
    prog, writer, reader = run_filter(ctx, pipes)
    ctx.dump(prog.pid)
    ctx.wait_dead(prog, prog.pid)
    restore_same_pipes(ctx, pipes, writer, reader)


def case_inherit_fd(ctx):
    pipes = Pipes()
    prog, writer, reader = run_filter(ctx, pipes)
    ctx.dump(prog.pid)
    ctx.wait_dead(prog, prog.pid)
    for fd in (47, 48):  # numbers nothing here uses
        try:
            os.fstat(fd)
            raise TestFailure("fd %d is already open in the harness" % fd)
        except OSError:
            pass
    os.dup2(pipes.in_r, 47)
    os.dup2(pipes.out_w, 48)
    out = open(os.path.join(ctx.tmp, "restore.out"), "wb")
    restore = ctx.restore(["--inherit-fd", "fd[47]:pipe:[%d]" % pipe_ino(pipes.in_r),
                           "--inherit-fd", "fd[48]:pipe:[%d]" % pipe_ino(pipes.out_w)],
                          subprocess.DEVNULL, out, pass_fds=(47, 48))
    out.close()
    for fd in (47, 48):
        os.close(fd)
    pipes.close_program_ends()
    finish(ctx, restore, pipes, writer, reader)


def case_leave_running(ctx):
    pipes = Pipes()
    prog, writer, reader = run_filter(ctx, pipes)
    pipes.close_program_ends()
    ctx.dump(prog.pid, ["--leave-running"])
    info = ctx.ckpt.run(["info", ctx.img], "info", ctx.deadline.timeout(CMD_TIMEOUT))
    if info.rc != 0 or info.out.count("external") < 2:
        raise TestFailure("ckpt info does not mark both pipes external: " + info.describe() + "\n" + info.out)
    finish(ctx, None, pipes, writer, reader)
    if prog.wait(ctx.deadline.timeout(10)) != 0:
        raise TestFailure("the program exited %s" % ztlib.describe_rc(prog.returncode))


def case_missing(ctx):
    pipes = Pipes()
    prog, writer, reader = run_filter(ctx, pipes)
    ctx.dump(prog.pid)
    ctx.wait_dead(prog, prog.pid)
    res = ctx.ckpt.run(["restore", "-D", ctx.img], "restore-refused", ctx.deadline.timeout(CMD_TIMEOUT))
    ztlib.check_clean_error(res, "restore without a pipe for the outside")
    for needle in ("process %d fd 0" % prog.pid, "pipe:[%d]" % pipe_ino(pipes.in_r), "--inherit-fd"):
        if needle not in res.err:
            raise TestFailure("the refusal does not say %r: %s" % (needle, res.err.strip()))
    if ztlib.pid_exists(prog.pid):
        raise TestFailure("pid %d exists after the refused restore" % prog.pid)
    ctx.step("refused: %s" % res.err.strip())
    restore_same_pipes(ctx, pipes, writer, reader)


def case_new_pipes(ctx):
    old = Pipes()
    prog, writer, reader = run_filter(ctx, old)
    old.close_program_ends()
    ctx.dump(prog.pid)
    ctx.wait_dead(prog, prog.pid)
    writer.stop(reader_may_be_gone=True)
    os.close(old.in_w)  # the old reader gets end of file: the program's write end died with it
    answered = reader.lines(ctx.deadline.timeout(10))
    if not answered:
        raise TestFailure("the program answered nothing before the dump")
    last = int(answered[-1].split()[0])
    check_conversation(answered + ["EOF %d" % last], int(answered[-1].split()[1]))
    new = Pipes()
    restore = ctx.restore(["--inherit-stdio"], new.in_r, new.out_w)
    new.close_program_ends()
    writer, reader = Writer(new.in_w, first=1000000), Reader(new.out_r)
    time.sleep(0.3)
    sent = writer.stop()
    os.close(new.in_w)
    ctx.wait_restore(restore)
    lines = reader.lines(ctx.deadline.timeout(10))
    # Numbers the program had read from the old pipe but not answered yet when it was dumped
    # are in its memory: it answers them first, on the new pipe.
    old_value = int(answered[-1].split()[1])
    carried = 0
    while carried < len(lines) and lines[carried] == "%d %d" % (last + 1 + carried, old_value + 1 + carried):
        carried += 1
    if carried:
        ctx.step("%d number(s) read from the old pipe before the dump answered first" % carried)
    check_conversation(lines[carried:], sent, first_count=last + 1 + carried, first_value=1000000)
    ctx.step("%d lines answered in order" % (sent - 1000000 + 1))


def case_tree(ctx):
    pipes = Pipes()
    sh = ctx.start(["sh", "-c", "'%s' | cat; echo sh-done" % ctx.exe], pipes.in_r, pipes.out_w)
    writer, reader = Writer(pipes.in_w), Reader(pipes.out_r)
    time.sleep(0.3)
    kids = ztlib.descendants(sh.pid)
    if len(kids) != 2:
        raise TestFailure("sh -c 'zt_echo_seq | cat' has %d children, expected 2" % len(kids))
    ctx.dump(sh.pid)
    ctx.wait_dead(sh, sh.pid)
    ztlib.wait_gone(sorted(kids), ctx.deadline.timeout(10))
    restore = ctx.restore(["--inherit-stdio"], pipes.in_r, pipes.out_w)
    pipes.close_program_ends()
    finish(ctx, restore, pipes, writer, reader, trailer=["sh-done"])


def case_fifo_stdin(ctx):
    fifo = os.path.join(ctx.tmp, "fifo")
    os.mkfifo(fifo)
    keep = os.open(fifo, os.O_RDWR)  # the harness's end: a writer, and it keeps the pipe alive
    prog_in = os.open(fifo, os.O_RDONLY)
    out_r, out_w = os.pipe()
    prog = ctx.start([ctx.exe], prog_in, out_w)
    os.close(prog_in)
    writer, reader = Writer(keep), Reader(out_r)
    time.sleep(0.3)
    ctx.dump(prog.pid)
    ctx.wait_dead(prog, prog.pid)
    time.sleep(0.1)  # bytes pile up in the FIFO meanwhile
    restore = ctx.restore(["--inherit-stdio"], subprocess.DEVNULL, out_w)
    os.close(out_w)
    time.sleep(0.3)
    sent = writer.stop()
    os.close(keep)
    ctx.wait_restore(restore)
    check_conversation(reader.lines(ctx.deadline.timeout(10)), sent)
    ctx.step("%d lines answered in order" % sent)


CASES = {
    "stdio-same": case_stdio_same,
    "inherit-fd": case_inherit_fd,
    "leave-running": case_leave_running,
    "missing": case_missing,
    "new-pipes": case_new_pipes,
    "tree": case_tree,
    "fifo-stdin": case_fifo_stdin,
}

if __name__ == "__main__":
    sys.exit(ztlib.case_main("external_pipes", __doc__, CASES, Ctx))
