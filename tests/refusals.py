#!/usr/bin/env python3
"""refusals.py - ckpt dump refuses state it cannot save, and leaves the target unharmed.

Each case is its own ctest test (refusals/NAME; `--list` shows them). A program
(zt_hold KIND or zt_fdkinds KIND) sets up one kind of state, then `ckpt dump` runs on it.

Refused kinds: the dump must exit non-zero (below 128), print exactly one stderr line,
starting `ckpt: error:` and naming the kind (and, for descriptors, the fd and the kind's
own name, never the unknown-kind fallback); leave no image (no meta.img or data.img);
leave the target running (neither traced nor stopped), with the same visible state
(maps, fds, signal state, threads), and no process may appear or vanish. After SIGTERM
the target checks that its state is still there and must print PASS.

Accepted kinds (no_new_privs, personality, the descriptor kinds ckpt saves): a dump with
--leave-running must succeed and the target must still pass.

fd-coverage opens one descriptor of every kind this machine lets it create and checks that
the refusal names every refused one with its own kind (the audit table covers every
kind the kernel shows in /proc/PID/fd links here) and none of the saved ones.

Exit code: 0 pass, 1 fail, 77 skipped (the machine cannot create the state).
"""

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

CMD_TIMEOUT = 30
SKIP = ztlib.SKIP

# zt_fdkinds kind -> the kind name ckpt's audit uses, or None for kinds ckpt saves.
FD_KINDS = {
    "eventfd": None,
    "epoll": None,
    "signalfd": None,
    "timerfd": None,
    "inotify": None,
    "fanotify": "fanotify",
    "pidfd": "pidfd",
    "userfaultfd": "userfaultfd",
    "io_uring": "io_uring",
    "perf_event": "perf_event",
    "bpf-map": "BPF map",
    "bpf-prog": "BPF program",
    "memfd": None,
    "memfd_secret": "memfd_secret",
    "socket-unix": None,
    "socket-inet": None,
    "socket-netlink": "socket",
    "pipe": None,
    "fifo": None,
    "ptmx": None,
    "nsfs": "namespace descriptor",
    "mqueue": "POSIX message queue",
    "fscontext": "mount context",
    "landlock": "Landlock ruleset",
    "devnull": None,
    "regular": None,
    "directory": None,
    "pty": None,
}

FD_RE = re.compile(r"has fd (\d+) \((.*?)\) of (?:kind ([^:;]+)|(a kind ckpt does not know))")


Skip = ztlib.Skip


class Ctx:
    def __init__(self, args, name):
        self.args = args
        self.name = name
        self.deadline = ztlib.Deadline(args.timeout)
        self.tmp = ztlib.make_tmpdir("refusals-" + name)
        self.work = os.path.join(self.tmp, "work")
        self.img = os.path.join(self.tmp, "img")
        os.mkdir(self.work)
        os.mkdir(self.img)
        self.ckpt = ztlib.Ckpt(args.ckpt, self.tmp)
        self.progs = []
        self.pty = None
        self.t0 = time.monotonic()

    def step(self, msg):
        log("  [%6.2f s] %s" % (time.monotonic() - self.t0, msg))

    def start(self, name, args=(), workdir=None, stdin_fd=None):
        workdir = workdir or self.work
        prog = ztlib.Program(name, self.args.bindir, workdir, args, stdin_fd=stdin_fd)
        self.progs.append(prog)
        try:
            prog.wait_ready(self.deadline.timeout(15))
        except TestFailure:
            skipped = [l for l in prog.output().splitlines() if l.startswith("SKIP:")]
            if skipped:
                raise Skip(skipped[0][5:].strip())
            raise
        self.step("started zt_%s %s, pid %d" % (name, " ".join(args), prog.pid))
        return prog

    def pty_slave(self):
        master, slave = os.openpty()
        self.pty = (master, slave)
        return slave

    def refused(self, prog, must_name, names_target=True):
        """Dump prog; it must be refused cleanly with a message containing every string
        of must_name (and, if names_target, "process PID " of prog); prog must be unharmed.
        Returns the message."""
        before = ztlib.visible_state(prog.pid)
        procs_before = ztlib.descendants()
        res = self.ckpt.run(["dump", "--pid", prog.pid, "-o", self.img], "dump",
                            self.deadline.timeout(CMD_TIMEOUT))
        ztlib.check_clean_error(res, "dump of zt_%s" % prog.name)
        msg = res.err.strip()
        self.step("refused: %s" % msg)
        if not msg.startswith("ckpt: error: "):
            raise TestFailure("the error line does not start with `ckpt: error: `: %r" % msg)
        if names_target and "process %d " % prog.pid not in msg:
            raise TestFailure("the message does not name the process %d: %r" % (prog.pid, msg))
        for s in must_name:
            if s not in msg:
                raise TestFailure("the message does not mention %r: %r" % (s, msg))
        if "does not know" in msg:
            raise TestFailure("a kind was refused as unknown: %r" % msg)
        self.unharmed(prog, before, procs_before)
        for f in ("meta.img", "data.img"):
            if os.path.exists(os.path.join(self.img, f)):
                raise TestFailure("the refused dump left %s in the image directory" % f)
        return msg

    def accepted(self, prog):
        """A --leave-running dump of prog must succeed and leave it unharmed."""
        before = ztlib.visible_state(prog.pid)
        procs_before = ztlib.descendants()
        res = self.ckpt.run(["dump", "--pid", prog.pid, "-o", self.img, "--leave-running"], "dump",
                            self.deadline.timeout(CMD_TIMEOUT))
        if res.timed_out or res.rc != 0:
            raise TestFailure("the dump must succeed: " + res.describe())
        if not os.path.isfile(os.path.join(self.img, "meta.img")):
            raise TestFailure("the dump succeeded but left no meta.img")
        self.step("dump --leave-running succeeded")
        self.unharmed(prog, before, procs_before)

    def unharmed(self, prog, before, procs_before):
        if prog.proc.poll() is not None:
            raise TestFailure("the target died: %s; output:\n%s"
                              % (ztlib.describe_rc(prog.proc.returncode), ztlib.indent(prog.output())))
        bad = ztlib.traced_or_stopped(prog.pid)
        if bad:
            raise TestFailure("after the dump the target " + bad)
        problems = ztlib.compare_state(before, ztlib.visible_state(prog.pid), False)
        if problems:
            raise TestFailure("the dump changed the target:\n  " + ztlib.state_problems_text(problems))
        procs_after = ztlib.descendants()
        if procs_after != procs_before:
            raise TestFailure("processes changed during the dump: before %s, after %s"
                              % (sorted(procs_before), sorted(procs_after)))

    def finish(self, prog):
        """SIGTERM: the program checks its state and must pass."""
        os.kill(prog.pid, signal.SIGTERM)
        try:
            rc = prog.proc.wait(timeout=self.deadline.timeout(20))
        except subprocess.TimeoutExpired:
            raise TestFailure("zt_%s did not exit within 20 s of SIGTERM; output:\n%s"
                              % (prog.name, ztlib.indent(prog.output())))
        prog.check_result(ztlib.describe_rc(rc), rc == 0)
        self.step("zt_%s passed its own check" % prog.name)

    def cleanup(self):
        for prog in self.progs:
            if prog.proc.poll() is None:
                prog.proc.kill()
                prog.proc.wait()
        if self.pty:
            for fd in self.pty:
                os.close(fd)
        return ztlib.kill_descendants("refusals cleanup")


# ------------------------------------------------------------------------------ cases


def hold_refused(kind, *must_name, extra=None):
    def case(ctx):
        prog = ctx.start("hold", [kind])
        names = list(must_name)
        if extra:
            names += extra(ctx, prog)
        ctx.refused(prog, names)
        ctx.finish(prog)
    return case


def hold_accepted(kind):
    def case(ctx):
        prog = ctx.start("hold", [kind])
        ctx.accepted(prog)
        ctx.finish(prog)
    return case


def case_vfork_child(ctx):
    # zt_hold waits in vfork() while its child, sharing its memory, sleeps before exec
    # (the child printed READY). Freezing the parent would hang until the exec.
    prog = ctx.start("hold", ["vfork"])
    kids = sorted(p for p, pp in ztlib.all_ppids().items() if pp == prog.pid)
    if len(kids) != 1:
        raise TestFailure("setup: zt_hold vfork has children %s, expected one" % kids)
    state = ztlib.proc_stat(prog.pid)["state"]
    if state != "D":
        raise TestFailure("setup: the vfork parent %d is in state %s, expected D (waiting for its child)"
                          % (prog.pid, state))
    ctx.refused(prog, ["vfork", "process %d " % kids[0]])
    ctx.finish(prog)  # SIGTERM pending lets the child exec /bin/true; the parent reaps it


def case_traced_descendant(ctx):
    # A child of the target traced by another child (its sibling) with PTRACE_SEIZE: a
    # ptrace relation inside the tree. The message must name both and the tracing; it may
    # come from the tracee's side (already traced) or the tracer's (traces ... with ptrace),
    # so it need not name the root.
    prog = ctx.start("hold", ["traced-child"])
    kids = sorted(p for p, pp in ztlib.all_ppids().items() if pp == prog.pid)
    traced = {k: int(ztlib.proc_status(k).get("TracerPid", "0")) for k in kids}
    pairs = [(k, t) for k, t in traced.items() if t in kids]
    if len(kids) != 2 or len(pairs) != 1:
        raise TestFailure("setup: children %s with tracers %s, expected one traced by the other" % (kids, traced))
    tracee, tracer = pairs[0]
    msg = ctx.refused(prog, ["trace", str(tracee), str(tracer)], names_target=False)
    if not re.search(r"\bprocess %d\b|\bpid %d\b" % (tracee, tracee), msg) or \
            not re.search(r"\bprocess %d\b|\bpid %d\b" % (tracer, tracer), msg):
        raise TestFailure("the message does not name the tracee %d and the tracer %d as processes: %r"
                          % (tracee, tracer, msg))
    ctx.finish(prog)  # the tracer detaches, the tracee is killed, both reaped


def case_session_ctty(ctx):
    # A child that leads its own session with a controlling terminal (the harness's pty):
    # restore cannot give a session its terminal back yet. The message must name the child.
    prog = ctx.start("hold", ["ctty-child"], stdin_fd=ctx.pty_slave())
    kids = sorted(p for p, pp in ztlib.all_ppids().items() if pp == prog.pid)
    if len(kids) != 1:
        raise TestFailure("setup: children %s, expected one" % kids)
    ctx.refused(prog, ["process %d leads a session" % kids[0], "controlling terminal"], names_target=False)
    ctx.finish(prog)


def case_pty_master_outside(ctx):
    # The target's stdin is the master of a pty pair the harness holds too (both ends):
    # the pair cannot move with the tree.
    master, slave = os.openpty()
    ctx.pty = (master, slave)
    prog = ctx.start("hold", ["none"], stdin_fd=master)
    ctx.refused(prog, ["fd 0", "also held outside", "process %d fd %d holds the master" % (os.getpid(), master)])
    ctx.finish(prog)


def case_epoll_foreign_target(ctx):
    # The epoll watches an eventfd only the child holds, and the child has no epoll: no
    # process could register the target again. The message names the epoll and the child.
    prog = ctx.start("hold", ["epoll-foreign"])
    kids = sorted(p for p, pp in ztlib.all_ppids().items() if pp == prog.pid)
    if len(kids) != 1:
        raise TestFailure("setup: children %s, expected one" % kids)
    ctx.refused(prog, ["epoll", "only process %d holds" % kids[0]])
    ctx.finish(prog)


def case_tcp_outside(ctx):
    # A TCP connection whose other end is the harness, outside the dumped tree: refused
    # (it needs TCP_REPAIR). The harness echoes a byte for the program's own check.
    import socket
    import threading
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    conns = []

    def serve():
        c, _ = listener.accept()
        conns.append(c)
        b = c.recv(1)
        if b:
            c.sendall(b)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        prog = ctx.start("hold", ["tcp-outside", str(listener.getsockname()[1])])
        ctx.refused(prog, ["TCP connection", "outside the dumped tree", "not supported yet"])
        ctx.finish(prog)
    finally:
        for c in conns:
            c.close()
        listener.close()


def case_ptrace_tracer(ctx):
    # The tracee is the harness's zt_counter, not a child of the target: only the ptrace
    # relation is there to refuse.
    tracee_dir = os.path.join(ctx.tmp, "tracee")
    os.mkdir(tracee_dir)
    tracee = ctx.start("counter", workdir=tracee_dir)
    prog = ctx.start("hold", ["tracer", str(tracee.pid)])
    ctx.refused(prog, ["traces process %d with ptrace" % tracee.pid])
    ctx.finish(prog)  # detaches the tracee
    ctx.finish(tracee)


def case_exe_deleted(ctx):
    bindir = os.path.join(ctx.tmp, "bin")
    os.mkdir(bindir)
    shutil.copy2(os.path.join(ctx.args.bindir, "zt_hold"), bindir)
    prog = ztlib.Program("hold", bindir, ctx.work, ["none"])
    ctx.progs.append(prog)
    prog.wait_ready(ctx.deadline.timeout(15))
    os.unlink(prog.path)
    ctx.step("started a copy of zt_hold, pid %d, and deleted the copy" % prog.pid)
    ctx.refused(prog, ["runs an executable that was deleted"])
    ctx.finish(prog)


def ia32_program(path):
    """Writes a minimal static i386 ELF: write(1, "READY\\n", 6), then pause() forever."""
    import struct
    base, ehsize, phsize = 0x08048000, 52, 32
    msg = b"READY\n"
    code_at = base + ehsize + phsize
    msg_at = code_at + 31
    code = (bytes([0xb8, 4, 0, 0, 0, 0xbb, 1, 0, 0, 0, 0xb9]) + struct.pack("<I", msg_at) +
            bytes([0xba, 6, 0, 0, 0, 0xcd, 0x80]) +          # write(1, msg, 6)
            bytes([0xb8, 29, 0, 0, 0, 0xcd, 0x80, 0xeb, 0xf7]))  # for (;;) pause()
    assert len(code) == 31
    body = code + msg
    size = ehsize + phsize + len(body)
    eh = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    eh += struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, code_at, ehsize, 0, 0, ehsize, phsize, 1, 0, 0, 0)
    ph = struct.pack("<IIIIIIII", 1, 0, base, base, size, size, 5, 0x1000)
    with open(path, "wb") as f:
        f.write(eh + ph + body)
    os.chmod(path, 0o755)


def case_ia32(ctx):
    bindir = os.path.join(ctx.tmp, "bin")
    os.mkdir(bindir)
    ia32_program(os.path.join(bindir, "zt_ia32"))
    prog = ztlib.Program("ia32", bindir, ctx.work)
    ctx.progs.append(prog)
    try:
        prog.wait_ready(ctx.deadline.timeout(15))
    except TestFailure:
        if prog.proc.poll() is not None:
            raise Skip("this kernel does not run ia32 programs (no IA32 emulation)")
        raise
    ctx.step("started a minimal i386 program, pid %d" % prog.pid)
    ctx.refused(prog, ["32-bit", "ia32"])
    prog.proc.kill()  # it has no self-check: refused() has compared its state
    prog.proc.wait()


def case_file_overmounted(ctx):
    """A regular file whose path leads to another file now (here: a file bind-mounted over
    it). Restore reopens files by path, so the dump must refuse."""
    prog = ctx.start("fdkinds", ["regular"])
    read_fdkinds(ctx)
    target = os.path.join(ctx.work, "zt-regular")
    other = os.path.join(ctx.tmp, "other-file")
    open(other, "w").close()
    res = subprocess.run(["mount", "--bind", other, target], capture_output=True, text=True)
    if res.returncode != 0:
        raise Skip("cannot bind-mount a file here: " + res.stderr.strip())
    try:
        ctx.step("mounted another file over %s" % target)
        ctx.refused(prog, ["no longer leads to", target])
    finally:
        subprocess.run(["umount", target])
    ctx.finish(prog)


def ns_case(ns, shown):
    return hold_refused("ns-" + ns, "namespaces are not supported", shown + " is ")


def fd_case(kind):
    name = FD_KINDS[kind]

    def case(ctx):
        stdin = ctx.pty_slave() if kind == "pty" else None
        prog = ctx.start("fdkinds", [kind], stdin_fd=stdin)
        opened = read_fdkinds(ctx)
        if opened[kind] is None:
            raise Skip("this machine cannot create a %s descriptor: %s" % (kind, opened_reason(ctx, kind)))
        fd = opened[kind]
        if name is None:
            ctx.accepted(prog)
        else:
            msg = ctx.refused(prog, ["has fd %d (" % fd, "of kind %s:" % name])
            named = {int(m.group(1)) for m in FD_RE.finditer(msg)}
            if named != {fd}:
                raise TestFailure("the message names fds %s, expected only fd %d: %r" % (sorted(named), fd, msg))
        ctx.finish(prog)
    return case


def read_fdkinds(ctx):
    out = {}
    for line in ztlib.read_text(os.path.join(ctx.work, "fdkinds.txt")).splitlines():
        k, v = line.split(" ", 1)
        out[k] = int(v) if v.isdigit() else None
    return out


def opened_reason(ctx, kind):
    for line in ztlib.read_text(os.path.join(ctx.work, "fdkinds.txt")).splitlines():
        if line.startswith(kind + " - "):
            return line[len(kind) + 3:]
    return "?"


def case_fd_coverage(ctx):
    prog = ctx.start("fdkinds", [], stdin_fd=ctx.pty_slave())
    opened = read_fdkinds(ctx)
    missing = sorted(k for k, fd in opened.items() if fd is None)
    if set(opened) != set(FD_KINDS):
        raise TestFailure("zt_fdkinds and this harness disagree on the kinds: %s vs %s"
                          % (sorted(opened), sorted(FD_KINDS)))
    links = {}
    for name in os.listdir("/proc/%d/fd" % prog.pid):
        links[int(name)] = os.readlink("/proc/%d/fd/%s" % (prog.pid, name))
    msg = ctx.refused(prog, [])
    named = {}
    for m in FD_RE.finditer(msg):
        named[int(m.group(1))] = (m.group(2), m.group(3))
    problems = []
    for fd, link in sorted(links.items()):
        if fd not in named:
            continue
        shown, kind = named[fd]
        if shown != link:
            problems.append("fd %d is shown as %r, its link is %r" % (fd, shown, link))
    for kind, fd in sorted(opened.items(), key=lambda kv: kv[0]):
        if fd is None:
            continue
        want = FD_KINDS[kind]
        got = named.get(fd)
        if want is None and got is not None:
            problems.append("fd %d (%s, %s) is saved by ckpt but was refused as %s" % (fd, kind, links[fd], got[1]))
        elif want is not None and got is None:
            problems.append("fd %d (%s, %s) is not named in the refusal" % (fd, kind, links.get(fd)))
        elif want is not None and got[1] != want:
            problems.append("fd %d (%s, %s) is named as kind %r, expected %r" % (fd, kind, links[fd], got[1], want))
    extra = sorted(set(named) - set(links))
    if extra:
        problems.append("the refusal names fds that are not open: %s" % extra)
    if problems:
        raise TestFailure("the refusal does not cover the descriptor kinds:\n  " + "\n  ".join(problems))
    kinds_seen = sorted({kind for _, kind in named.values()})
    ctx.step("every refused descriptor named with its kind (%d fds, kinds: %s)" % (len(named), ", ".join(kinds_seen)))
    if missing:
        ctx.step("not creatable on this machine, so not covered here: %s" % ", ".join(missing))
    ctx.finish(prog)


CASES = {
    "ia32": case_ia32,
    "file-overmounted": case_file_overmounted,
    # A child, running or a zombie, is dumped with its parent (tests/zdtm.py tree_* restore them).
    "children-accepted": hold_accepted("child"),
    "zombie-child-accepted": hold_accepted("zombie"),
    "vfork-child": case_vfork_child,
    "session-ctty": case_session_ctty,
    "epoll-foreign-target": case_epoll_foreign_target,
    "traced-descendant": case_traced_descendant,
    "posix-timer-accepted": hold_accepted("timer"),
    "posix-lock-accepted": hold_accepted("posix-lock"),
    "flock-accepted": hold_accepted("flock"),
    "ofd-lock-accepted": hold_accepted("ofd-lock"),
    "lease": hold_refused("lease", "lease on fd", "not supported yet"),
    "tcp-outside": case_tcp_outside,
    "pty-master-outside": case_pty_master_outside,
    "pty-typed": hold_refused("pty-typed", "bytes typed into it are not read yet", "fd "),
    "seccomp-accepted": hold_accepted("seccomp"),
    "capabilities": hold_refused("capbset", "CapBnd", "capabilities are not supported"),
    "exe-deleted": case_exe_deleted,
    "cwd-deleted": hold_refused("cwd-deleted", "has a working directory that was deleted"),
    "chroot": hold_refused("chroot", "has a changed root directory"),
    "ns-net": ns_case("net", "net"),
    "ns-uts": ns_case("uts", "uts"),
    "ns-ipc": ns_case("ipc", "ipc"),
    "ns-mnt": ns_case("mnt", "mnt"),
    "ns-cgroup": ns_case("cgroup", "cgroup"),
    "ns-user": ns_case("user", "user"),
    "ns-pid": ns_case("pid", "pid_for_children"),
    "ns-time": ns_case("time", "time_for_children"),
    "ptrace-tracer": case_ptrace_tracer,
    "vma-droppable": hold_refused("droppable", "VMA flag 'dp'"),
    "vma-sealed": hold_refused("sealed", "VMA flag 'sl'"),
    "vma-userfaultfd": hold_refused("uffd-range", "VMA flag 'um'", "of kind userfaultfd"),
    "no-new-privs-accepted": hold_accepted("nnp"),
    "personality-accepted": hold_accepted("personality"),
    "fd-coverage": case_fd_coverage,
}
for _k in FD_KINDS:
    CASES["fd-" + _k + ("-accepted" if FD_KINDS[_k] is None else "")] = fd_case(_k)


def main():
    return ztlib.case_main("refusals", __doc__, CASES, Ctx)


if __name__ == "__main__":
    sys.exit(main())
