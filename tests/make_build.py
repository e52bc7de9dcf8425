#!/usr/bin/env python3
"""make_build.py - `make -j2` building a small C project, dumped mid-build.

The project: main.c and 8 files f1.c..f8.c, each with enough generated functions that its
compiler (cc1) runs for a while; the Makefile builds them with -j2 (make's jobserver pipe,
`sh -c` recipes, gcc's driver, cc1 and as with their temporary files) and links `prog`,
which prints the sum of what the files' functions return. The harness waits until a cc1
is running in the tree, then:

  restore        dumps (which kills the tree), restores it in the foreground: make must
                 exit 0, `prog` must print the right sum and `make -q` find nothing to do;
  leave-running  dumps with --leave-running: the build must finish the same way.
"""

import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztlib  # noqa: E402
from ztlib import Skip, TestFailure, log  # noqa: E402

CMD_TIMEOUT = 60
FUNCS = 400  # per file: a few hundred ms of cc1 -O2 each

MAKEFILE = """OBJS = main.o f1.o f2.o f3.o f4.o f5.o f6.o f7.o f8.o
prog: $(OBJS)
\tcc -o $@ $(OBJS)
%.o: %.c
\tcc -O2 -c -o $@ $<
"""


def write_project(work):
    total = 0
    for i in range(1, 9):
        with open(os.path.join(work, "f%d.c" % i), "w") as f:
            for k in range(FUNCS):
                f.write("static int g%d(int x) { int s = 0; for (int j = 0; j < x; j++) s += (j * %d) ^ (s >> 3); "
                        "return s %% 7 + %d; }\n" % (k, k + 1, k % 3))
            f.write("int f%d(void) { return %d%s; }\n" % (i, i, "".join(" + g%d(0) * 0" % k for k in range(FUNCS))))
        total += i
    with open(os.path.join(work, "main.c"), "w") as f:
        f.write("#include <stdio.h>\n")
        f.write("".join("int f%d(void);\n" % i for i in range(1, 9)))
        f.write('int main(void) { printf("sum %%d\\n", %s); return 0; }\n' % " + ".join("f%d()" % i for i in range(1, 9)))
    with open(os.path.join(work, "Makefile"), "w") as f:
        f.write(MAKEFILE)
    return total


class Ctx:
    def __init__(self, args, name):
        self.args = args
        self.deadline = ztlib.Deadline(args.timeout)
        self.tmp = ztlib.make_tmpdir("make-" + name)
        self.work = os.path.join(self.tmp, "work")
        os.mkdir(self.work)
        self.img = os.path.join(self.tmp, "img")
        self.ckpt = ztlib.Ckpt(args.ckpt, self.tmp)
        self.make = None
        self.restore = None
        self.t0 = time.monotonic()

    def step(self, msg):
        log("  [%6.2f s] %s" % (time.monotonic() - self.t0, msg))

    def cleanup(self):
        for p in (self.make, self.restore and self.restore[0]):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        return ztlib.kill_descendants("make_build cleanup")


def comm(pid):
    try:
        return ztlib.read_text("/proc/%d/comm" % pid).strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def start_build(ctx):
    for tool in ("make", "cc"):
        if not subprocess.run(["sh", "-c", "command -v " + tool], stdout=subprocess.DEVNULL).returncode == 0:
            raise Skip("%s is not installed" % tool)
    total = write_project(ctx.work)
    log_fd = os.open(os.path.join(ctx.tmp, "make.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    ctx.make = subprocess.Popen(["make", "-j2"], cwd=ctx.work, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
                                close_fds=True, start_new_session=True)
    os.close(log_fd)
    end = time.monotonic() + ctx.deadline.timeout(30)
    while time.monotonic() < end:
        running = [comm(p) for p in ztlib.descendants(ctx.make.pid)]
        if "cc1" in running:
            ctx.step("make -j2 (pid %d) is compiling: %s" % (ctx.make.pid, " ".join(sorted(running))))
            return total
        if ctx.make.poll() is not None:
            break
        time.sleep(0.005)
    raise TestFailure("no cc1 seen running under make (make exited %s)" % ctx.make.poll())


def dump(ctx, extra=()):
    res = ctx.ckpt.run(["dump", "--pid", ctx.make.pid, "-o", ctx.img] + list(extra), "dump",
                       ctx.deadline.timeout(CMD_TIMEOUT))
    if res.timed_out or res.rc != 0:
        raise TestFailure("dump failed: " + res.describe())
    objs = sorted(f for f in os.listdir(ctx.work) if f.endswith(".o"))
    ctx.step("dumped; objects built so far: %s" % (" ".join(objs) or "none"))


def check_result(ctx, total):
    res = subprocess.run([os.path.join(ctx.work, "prog")], stdout=subprocess.PIPE, timeout=10)
    out = res.stdout.decode(errors="replace").strip()
    if res.returncode != 0 or out != "sum %d" % total:
        raise TestFailure("prog printed %r (exit %d), expected 'sum %d'; make.log:\n%s" % (
            out, res.returncode, total, ztlib.indent(ztlib.read_text(os.path.join(ctx.tmp, "make.log")))))
    if subprocess.run(["make", "-q"], cwd=ctx.work, stdout=subprocess.DEVNULL).returncode != 0:
        raise TestFailure("make -q: the build is not complete")
    ctx.step("prog prints %r; make -q finds nothing to do" % out)


def case_restore(ctx):
    total = start_build(ctx)
    tree = ztlib.descendants(ctx.make.pid)
    dump(ctx)
    try:
        ctx.make.wait(ctx.deadline.timeout(10))
    except subprocess.TimeoutExpired:
        raise TestFailure("make still runs after the dump")
    ztlib.wait_gone(tree, ctx.deadline.timeout(10))
    ctx.restore = ctx.ckpt.start(["restore", "-D", ctx.img], "restore")
    res = ztlib.Ckpt.finish(ctx.restore, ctx.deadline.timeout(CMD_TIMEOUT))
    if res.timed_out or res.rc != 0:
        raise TestFailure("the restored make did not finish well: " + res.describe())
    ctx.step("restored make exited 0")
    check_result(ctx, total)


def case_leave_running(ctx):
    total = start_build(ctx)
    dump(ctx, ["--leave-running"])
    try:
        rc = ctx.make.wait(ctx.deadline.timeout(CMD_TIMEOUT))
    except subprocess.TimeoutExpired:
        raise TestFailure("make did not finish after the dump")
    if rc != 0:
        raise TestFailure("make exited %s after the dump" % ztlib.describe_rc(rc))
    check_result(ctx, total)


CASES = {"restore": case_restore, "leave-running": case_leave_running}

if __name__ == "__main__":
    sys.exit(ztlib.case_main("make_build", __doc__, CASES, Ctx))
