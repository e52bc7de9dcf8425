#!/usr/bin/env python3
"""badinput.py - ckpt must refuse bad input cleanly.

Each case is its own ctest test (badinput/NAME). A refusal is clean when ckpt
exits non-zero, is not killed by a signal (exit code < 128), prints exactly one
non-empty line on stderr (a trailing newline allowed), finishes within the time
limit, and leaves nothing behind (no new processes; where a running target is
involved, it keeps running unharmed).

Cases that refuse a damaged image also restore the undamaged copy of the same
image afterwards and require that to work, so a restore that fails for some
other reason cannot pass them.

Exit code: 0 pass, 1 fail, 77 skipped (ctest SKIP_RETURN_CODE).
"""

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

CMD_TIMEOUT = 20
PF_KTHREAD = 0x00200000
SKIP = ztlib.SKIP


Skip = ztlib.Skip


class Ctx:
    def __init__(self, args, name):
        self.args = args
        self.deadline = ztlib.Deadline(args.timeout)
        self.tmp = ztlib.make_tmpdir("badinput-" + name)
        self.work = os.path.join(self.tmp, "work")
        self.img = os.path.join(self.tmp, "img")
        os.mkdir(self.work)
        os.mkdir(self.img)
        self.ckpt = ztlib.Ckpt(args.ckpt, self.tmp)
        self.prog = None
        self.restore = None
        self.t0 = time.monotonic()

    def step(self, msg):
        log("  [%6.2f s] %s" % (time.monotonic() - self.t0, msg))

    def run(self, args, tag):
        return self.ckpt.run(args, tag, self.deadline.timeout(CMD_TIMEOUT))

    def expect_refusal(self, args, tag, what):
        before = ztlib.descendants()
        res = self.run(args, tag)
        ztlib.check_clean_error(res, what)
        self.step("%s: refused (%s): %s" % (what, ztlib.describe_rc(res.rc), res.err.strip()))
        new = ztlib.descendants() - before
        if new:
            raise TestFailure("%s: left processes behind: %s" % (what, sorted(new)))
        return res

    def start_counter(self):
        self.prog = ztlib.Program("counter", self.args.bindir, self.work)
        self.step("started zt_counter, pid %d" % self.prog.pid)
        self.prog.wait_ready(self.deadline.timeout(10))
        return self.prog

    def dumped_counter(self):
        """A complete image of zt_counter in self.img; the original killed and reaped."""
        prog = self.start_counter()
        before = ztlib.visible_state(prog.pid)
        res = self.run(["dump", "--pid", prog.pid, "-o", self.img], "dump")
        if res.timed_out or res.rc != 0:
            raise TestFailure("setup: dump of zt_counter failed: " + res.describe())
        try:
            rc = prog.proc.wait(timeout=self.deadline.timeout(10))
        except subprocess.TimeoutExpired:
            raise TestFailure("setup: zt_counter still alive after dump without --leave-running")
        if ztlib.pid_exists(prog.pid):
            raise TestFailure("setup: pid %d in use again, cannot go on" % prog.pid)
        self.step("setup: dumped zt_counter (original %s)" % ztlib.describe_rc(rc))
        for f in ("meta.img", "data.img"):
            if not os.path.isfile(os.path.join(self.img, f)):
                raise TestFailure("setup: the image lacks %s" % f)
        pristine = os.path.join(self.tmp, "img-pristine")
        shutil.copytree(self.img, pristine)
        return before, pristine

    def control_restore(self, pristine, before):
        """The undamaged image restores, runs and passes."""
        self.restore = self.ckpt.start(["restore", "-D", pristine], "restore-control")
        ztlib.wait_restored(self.restore, self.prog.pid, before, self.deadline.timeout(20), (),
                            self.prog.output)
        self.step("control: the undamaged image restored")
        os.kill(self.prog.pid, signal.SIGTERM)
        res = ztlib.Ckpt.finish(self.restore, self.deadline.timeout(20))
        self.restore = None
        if res.timed_out:
            raise TestFailure("control: restored zt_counter did not finish after SIGTERM")
        self.prog.check_result("ckpt restore " + ztlib.describe_rc(res.rc), res.rc == 0)
        self.step("control: restored zt_counter passed")

    def cleanup(self):
        if self.restore is not None and self.restore[0].poll() is None:
            self.restore[0].kill()
            self.restore[0].wait()
        if self.prog is not None and self.prog.proc.poll() is None:
            self.prog.proc.kill()
            self.prog.proc.wait()
        return ztlib.kill_descendants("badinput cleanup")


# ------------------------------------------------------------------------------ cases


def case_dump_nonexistent_pid(ctx):
    pid = ztlib.free_pid()
    ctx.step("pid %d does not exist" % pid)
    ctx.expect_refusal(["dump", "--pid", pid, "-o", ctx.img], "dump", "dump of non-existent pid %d" % pid)
    ctx.expect_refusal(["info", ctx.img], "info", "info on the directory of the refused dump")


def find_kthread():
    try:
        if ztlib.proc_stat(2)["flags"] & PF_KTHREAD:
            return 2
    except OSError:
        pass
    for d in sorted(os.listdir("/proc"), key=lambda x: (len(x), x)):
        if d.isdigit():
            try:
                if ztlib.proc_stat(int(d))["flags"] & PF_KTHREAD:
                    return int(d)
            except (OSError, ValueError):
                pass
    return None


def case_dump_kernel_thread(ctx):
    pid = find_kthread()
    if pid is None:
        raise Skip("no kernel thread visible in this pid namespace")
    name = ztlib.read_text("/proc/%d/comm" % pid).strip()
    ctx.step("kernel thread: pid %d (%s)" % (pid, name))
    ctx.expect_refusal(["dump", "--pid", pid, "-o", ctx.img], "dump", "dump of kernel thread %d (%s)" % (pid, name))
    bad = ztlib.traced_or_stopped(pid)
    if bad:
        raise TestFailure("after the refused dump the kernel thread " + bad)
    ctx.expect_refusal(["info", ctx.img], "info", "info on the directory of the refused dump")


def case_restore_missing_dir(ctx):
    missing = os.path.join(ctx.tmp, "no-such-image")
    ctx.expect_refusal(["restore", "-D", missing], "restore", "restore from a missing directory")
    ctx.expect_refusal(["info", missing], "info", "info on a missing directory")


def damaged_image_case(ctx, fname, damage, what, info_must_fail=True):
    before, pristine = ctx.dumped_counter()
    path = os.path.join(ctx.img, fname)
    size = os.path.getsize(path)
    if size < 2:
        raise TestFailure("%s is only %d bytes: cannot damage it meaningfully" % (fname, size))
    damage(path, size)
    now = os.path.getsize(path) if os.path.exists(path) else None
    ctx.step("%s: %s (was %d bytes, now %s)" % (fname, what, size, "gone" if now is None else "%d" % now))
    pid = ctx.prog.pid
    ctx.expect_refusal(["restore", "-D", ctx.img], "restore", "restore with %s %s" % (what, fname))
    if ztlib.pid_exists(pid):
        raise TestFailure("pid %d exists after the refused restore" % pid)
    if info_must_fail:
        ctx.expect_refusal(["info", ctx.img], "info", "info with %s %s" % (what, fname))
    ctx.control_restore(pristine, before)


def flip_middle(path, size):
    with open(path, "r+b") as f:
        n = min(16, max(1, size // 4))
        off = size // 2 - n // 2
        f.seek(off)
        data = f.read(n)
        f.seek(off)
        f.write(bytes(b ^ 0xFF for b in data))


def cut_half(path, size):
    os.truncate(path, size // 2)


def case_restore_corrupt_meta(ctx):
    damaged_image_case(ctx, "meta.img", flip_middle, "bytes flipped in the middle of")


def case_restore_truncated_meta(ctx):
    damaged_image_case(ctx, "meta.img", cut_half, "truncated in half")


def case_restore_truncated_data(ctx):
    damaged_image_case(ctx, "data.img", cut_half, "truncated in half")


def case_restore_missing_data(ctx):
    damaged_image_case(ctx, "data.img", lambda p, s: os.unlink(p), "deleted")


def case_restore_pid_taken(ctx):
    prog = ctx.start_counter()
    before = ztlib.visible_state(prog.pid)
    res = ctx.run(["dump", "--pid", prog.pid, "-o", ctx.img, "--leave-running"], "dump")
    if res.timed_out or res.rc != 0:
        raise TestFailure("setup: dump --leave-running failed: " + res.describe())
    ctx.step("setup: dumped zt_counter with --leave-running")
    if prog.proc.poll() is not None:
        raise TestFailure("setup: zt_counter died in a --leave-running dump")
    ctx.expect_refusal(["restore", "-D", ctx.img], "restore", "restore while pid %d is taken" % prog.pid)
    if prog.proc.poll() is not None:
        raise TestFailure("the original died: %s" % ztlib.describe_rc(prog.proc.returncode))
    bad = ztlib.traced_or_stopped(prog.pid)
    if bad:
        raise TestFailure("after the refused restore the original " + bad)
    problems = ztlib.compare_state(before, ztlib.visible_state(prog.pid), False)
    if problems:
        raise TestFailure("the refused restore changed the original:\n  " + ztlib.state_problems_text(problems))
    left = ztlib.descendants() - {prog.pid}
    if left:
        raise TestFailure("processes left behind besides the original: %s" % sorted(left))
    os.kill(prog.pid, signal.SIGTERM)
    try:
        rc = prog.proc.wait(timeout=ctx.deadline.timeout(20))
    except subprocess.TimeoutExpired:
        raise TestFailure("the original did not exit after SIGTERM")
    prog.check_result(ztlib.describe_rc(rc), rc == 0)
    ctx.step("the original still passes")


def shm_segments():
    """{id: key} of every System V shared memory segment."""
    out = {}
    for line in ztlib.read_text("/proc/sysvipc/shm").splitlines()[1:]:
        f = line.split()
        out[int(f[1])] = int(f[0]) & 0xffffffff
    return out


def case_restore_shm_id_taken(ctx):
    # zt_sysv_shm's keyed segment outlives its SIGKILLed original: restoring the image then
    # finds the id taken, refuses, and makes no segment; once it is gone the restore works.
    ctx.prog = prog = ztlib.Program("sysv_shm", ctx.args.bindir, ctx.work)
    prog.wait_ready(ctx.deadline.timeout(10))
    before_segments = shm_segments()
    before = ztlib.visible_state(prog.pid)
    res = ctx.run(["dump", "--pid", prog.pid, "-o", ctx.img, "--leave-running"], "dump")
    if res.timed_out or res.rc != 0:
        raise TestFailure("setup: dump --leave-running failed: " + res.describe())
    key = 0x5a5a0000 + (prog.pid & 0xffff)
    ids = [i for i, k in before_segments.items() if k == key]
    if len(ids) != 1:
        raise TestFailure("setup: zt_sysv_shm's segment with key %#x not found: %s" % (key, before_segments))
    prog.proc.kill()
    prog.proc.wait()
    left = shm_segments()
    if ids[0] not in left:
        raise TestFailure("setup: segment %d went with its process" % ids[0])
    ctx.step("setup: dumped zt_sysv_shm, killed it; its segment %d stays" % ids[0])
    res = ctx.expect_refusal(["restore", "-D", ctx.img], "restore", "restore while segment %d exists" % ids[0])
    if "in use" not in res.err:
        raise TestFailure("the refusal does not say the id is in use: %r" % res.err.strip())
    if shm_segments() != left:
        raise TestFailure("the refused restore left segments: before %s, after %s" % (left, shm_segments()))
    subprocess.run(["ipcrm", "-m", str(ids[0])], check=True)
    ctx.step("removed segment %d" % ids[0])
    ctx.control_restore(ctx.img, before)
    if ids[0] in shm_segments():
        raise TestFailure("the restored program did not remove its segment at exit")


CASES = {
    "dump-nonexistent-pid": case_dump_nonexistent_pid,
    "dump-kernel-thread": case_dump_kernel_thread,
    "restore-missing-dir": case_restore_missing_dir,
    "restore-corrupt-meta": case_restore_corrupt_meta,
    "restore-truncated-meta": case_restore_truncated_meta,
    "restore-truncated-data": case_restore_truncated_data,
    "restore-missing-data": case_restore_missing_data,
    "restore-pid-taken": case_restore_pid_taken,
    "restore-shm-id-taken": case_restore_shm_id_taken,
}


def main():
    return ztlib.case_main("badinput", __doc__, CASES, Ctx)


if __name__ == "__main__":
    sys.exit(main())
