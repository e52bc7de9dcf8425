#!/usr/bin/env python3
"""changed_files.py - a restore over files that changed since the dump is refused.

Each case is its own ctest test (changed_files/NAME). The subject is zt_changed_file
(log.dat open for appending, data.dat open for reading) or, for exe-patched, a copy of
zt_counter run from a directory of the test. The program is dumped (and so killed), one
of its files is changed, and `ckpt restore` must refuse cleanly: exit code 1..127, one
stderr line naming the file and what differs, no process left, the pid still free. Then,
where the case says so, `ckpt restore --allow-changed-files` (or a plain restore, for a
change that keeps the content identity) must bring the program back, and it must pass.

Exit code: 0 pass, 1 fail.
"""

import os
import shutil
import signal
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztlib  # noqa: E402
from ztlib import TestFailure, log  # noqa: E402

CMD_TIMEOUT = 20


class Ctx:
    def __init__(self, args, name):
        self.args = args
        self.deadline = ztlib.Deadline(args.timeout)
        self.tmp = ztlib.make_tmpdir("changed-" + name)
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

    def dumped(self, name="changed_file", bindir=None, env=None):
        """Starts zt_NAME, dumps it (killing it); returns its visible state before the dump."""
        self.prog = ztlib.Program(name, bindir or self.args.bindir, self.work, env=env)
        self.prog.wait_ready(self.deadline.timeout(10))
        before = ztlib.visible_state(self.prog.pid)
        res = self.ckpt.run(["dump", "--pid", self.prog.pid, "-o", self.img], "dump",
                            self.deadline.timeout(CMD_TIMEOUT))
        if res.timed_out or res.rc != 0:
            raise TestFailure("setup: dump failed: " + res.describe())
        try:
            self.prog.proc.wait(timeout=self.deadline.timeout(10))
        except subprocess.TimeoutExpired:
            raise TestFailure("setup: zt_%s still alive after the dump" % name)
        if ztlib.pid_exists(self.prog.pid):
            raise TestFailure("setup: pid %d in use again, cannot go on" % self.prog.pid)
        self.step("dumped zt_%s, pid %d" % (name, self.prog.pid))
        return before

    def expect_refusal(self, path, *needles):
        """Plain restore: refused with one line naming `path` and each needle; nothing left."""
        before = ztlib.descendants()
        res = self.ckpt.run(["restore", "-D", self.img], "restore-refused", self.deadline.timeout(CMD_TIMEOUT))
        what = "restore over the changed %s" % os.path.basename(path)
        ztlib.check_clean_error(res, what)
        err = res.err.strip()
        for n in (path,) + needles:
            if n not in err:
                raise TestFailure("%s: the message does not say %r: %s" % (what, n, err))
        if ztlib.pid_exists(self.prog.pid):
            raise TestFailure("%s: pid %d exists after the refusal" % (what, self.prog.pid))
        new = ztlib.descendants() - before
        if new:
            raise TestFailure("%s: processes left behind: %s" % (what, sorted(new)))
        self.step("refused: %s" % err)

    def restore_and_pass(self, before, extra=()):
        self.restore = self.ckpt.start(["restore", "-D", self.img] + list(extra), "restore")
        ztlib.wait_restored(self.restore, self.prog.pid, before, self.deadline.timeout(20), (),
                            self.prog.output)
        self.step("restored with %s" % (" ".join(extra) or "no option"))
        os.kill(self.prog.pid, signal.SIGTERM)
        res = ztlib.Ckpt.finish(self.restore, self.deadline.timeout(20))
        self.restore = None
        if res.timed_out:
            raise TestFailure("the restored program did not finish after SIGTERM")
        self.prog.check_result("ckpt restore " + ztlib.describe_rc(res.rc), res.rc == 0)
        if extra and "changed since the dump" not in res.err:
            raise TestFailure("--allow-changed-files did not report the change on stderr: %r" % res.err)
        self.step("the restored program passed")

    def cleanup(self):
        if self.restore is not None and self.restore[0].poll() is None:
            self.restore[0].kill()
            self.restore[0].wait()
        if self.prog is not None and self.prog.proc.poll() is None:
            self.prog.proc.kill()
            self.prog.proc.wait()
        return ztlib.kill_descendants("changed_files cleanup")


# ------------------------------------------------------------------------------ cases

CHANGED_ENV = dict(os.environ, ZT_FILES_CHANGED="1")


def case_truncated(ctx):
    before = ctx.dumped(env=CHANGED_ENV)
    log_dat = os.path.join(ctx.work, "log.dat")
    os.truncate(log_dat, 0)
    ctx.expect_refusal(log_dat, "size 1234 -> 0 (truncated)", "--allow-changed-files")
    ctx.restore_and_pass(before, ["--allow-changed-files"])
    if os.path.getsize(log_dat) != 4:
        raise TestFailure("log.dat is %d bytes: the append after the accepted truncation did not go "
                          "to its end" % os.path.getsize(log_dat))


def case_grown(ctx):
    ctx.dumped()
    log_dat = os.path.join(ctx.work, "log.dat")
    with open(log_dat, "ab") as f:
        f.write(b"later\n")
    ctx.expect_refusal(log_dat, "size 1234 -> 1240 (grew)")


def case_mtime(ctx):
    ctx.dumped()
    data = os.path.join(ctx.work, "data.dat")
    st = os.stat(data)
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    ctx.expect_refusal(data, "mtime differs")


def case_chmod(ctx):
    ctx.dumped()
    data = os.path.join(ctx.work, "data.dat")
    os.chmod(data, 0o600)
    ctx.expect_refusal(data, "ctime differs")


def case_removed(ctx):
    ctx.dumped()
    data = os.path.join(ctx.work, "data.dat")
    os.unlink(data)
    ctx.expect_refusal(data, "No such file")


def case_replaced_identical(ctx):
    """Another inode with the same size and mtime (a copy, or another machine): accepted."""
    before = ctx.dumped()
    data = os.path.join(ctx.work, "data.dat")
    ino = os.stat(data).st_ino
    shutil.copy2(data, data + ".new")
    os.rename(data + ".new", data)
    if os.stat(data).st_ino == ino:
        raise TestFailure("setup: the copy has the same inode")
    ctx.restore_and_pass(before)


def elf_build_id_offset(path):
    """File offset of the GNU build-id bytes of an ELF64 file, from its PT_NOTE segments."""
    with open(path, "rb") as f:
        elf = f.read()
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise TestFailure("%s is not ELF64" % path)
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz, _, p_align = struct.unpack_from("<IIQQQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        align = 8 if p_align == 8 else 4
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name_at = pos + 12
            desc_at = (name_at + namesz + align - 1) & ~(align - 1)
            if ntype == 3 and elf[name_at:name_at + namesz] == b"GNU\0" and descsz > 0:
                return desc_at, descsz
            pos = (desc_at + descsz + align - 1) & ~(align - 1)
    raise TestFailure("%s has no GNU build-id note (built without --build-id?)" % path)


def case_exe_patched(ctx):
    """The executable rewritten in place (same inode), as a patch or a rebuild would."""
    bindir = os.path.join(ctx.tmp, "bin")
    os.mkdir(bindir)
    exe = os.path.join(bindir, "zt_counter")
    shutil.copy2(os.path.join(ctx.args.bindir, "zt_counter"), exe)
    off, n = elf_build_id_offset(exe)
    before = ctx.dumped("counter", bindir)
    ino = os.stat(exe).st_ino
    with open(exe, "r+b") as f:  # in place: no new inode
        f.seek(off + n - 1)
        b = f.read(1)
        f.seek(off + n - 1)
        f.write(bytes([b[0] ^ 0xFF]))
    if os.stat(exe).st_ino != ino:
        raise TestFailure("setup: patching changed the inode")
    ctx.expect_refusal(exe, "build-id differs")
    # only the note changed, so the program still runs as before
    ctx.restore_and_pass(before, ["--allow-changed-files"])


def case_exe_deleted(ctx):
    """The executable deleted (or replaced, as by an upgrade) while it runs: the dump is
    refused, and the target runs on unharmed."""
    bindir = os.path.join(ctx.tmp, "bin")
    os.mkdir(bindir)
    exe = os.path.join(bindir, "zt_counter")
    shutil.copy2(os.path.join(ctx.args.bindir, "zt_counter"), exe)
    ctx.prog = ztlib.Program("counter", bindir, ctx.work)
    ctx.prog.wait_ready(ctx.deadline.timeout(10))
    os.unlink(exe)
    before = ztlib.visible_state(ctx.prog.pid)
    res = ctx.ckpt.run(["dump", "--pid", ctx.prog.pid, "-o", ctx.img], "dump", ctx.deadline.timeout(CMD_TIMEOUT))
    ztlib.check_clean_error(res, "dump of a process whose executable was deleted")
    if "executable" not in res.err or exe not in res.err:
        raise TestFailure("the refusal does not name the executable: %s" % res.err.strip())
    ctx.step("dump refused: %s" % res.err.strip())
    bad = ztlib.traced_or_stopped(ctx.prog.pid)
    if ctx.prog.proc.poll() is not None or bad:
        raise TestFailure("the target was harmed by the refused dump: %s" % (bad or "it died"))
    problems = ztlib.compare_state(before, ztlib.visible_state(ctx.prog.pid), False)
    if problems:
        raise TestFailure("the refused dump changed the target:\n  " + ztlib.state_problems_text(problems))
    os.kill(ctx.prog.pid, signal.SIGTERM)
    try:
        rc = ctx.prog.proc.wait(timeout=ctx.deadline.timeout(20))
    except subprocess.TimeoutExpired:
        raise TestFailure("the target did not exit after SIGTERM")
    ctx.prog.check_result(ztlib.describe_rc(rc), rc == 0)
    ctx.step("the target still passes")


CASES = {
    "truncated": case_truncated,
    "grown": case_grown,
    "mtime": case_mtime,
    "chmod": case_chmod,
    "removed": case_removed,
    "replaced-identical": case_replaced_identical,
    "exe-patched": case_exe_patched,
    "exe-deleted": case_exe_deleted,
}


def main():
    return ztlib.case_main("changed_files", __doc__, CASES, Ctx)


if __name__ == "__main__":
    sys.exit(main())
