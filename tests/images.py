#!/usr/bin/env python3
"""images.py - images are precious; the command line speaks one language.

Each case is its own ctest test (images/NAME):

  existing-image     a dump into a directory holding an image is refused (one line, target
                     unharmed and not killed), the image is byte for byte intact and restores
  overwrite          an --overwrite dump SIGKILLed before its commit leaves the old image
                     intact; a complete one replaces it; the new one restores
  concurrent-race    two `dump --leave-running` into one directory at once: exactly one
                     succeeds, the other is refused by the lock (or, if the first was already
                     done, by the image it left); the image is complete and restores
  concurrent-held    a dump stopped inside its memory transfer holds the directory: a second
                     dump is refused with "DIR is being written by another dump (pid N)";
                     the first then completes
  killed-dump        a dump SIGKILLed mid-transfer leaves partial files; the next dump into
                     the directory removes them (saying so with -v) and writes a complete image
  failed-dump        a failed dump removes the directory it created, keeps one that existed
  info-verify        `info --verify` finds a flipped byte in data.img (plain `info` does not
                     read page data); `info --json` keeps 64-bit values and addresses exact
  cli-errors         parse errors are one `ckpt: error:` line and exit 1; --help/--version
                     exit 0; `dump --help` marks --pid and -o REQUIRED
  verbose-anywhere   -v/-vv work before and after the subcommand
  dir-reasons        -D naming a file, a missing directory, an unreadable image: the real reason
  zombie-pid         restore while the pid is held by an unreaped zombie says so

The SIGKILL and stop points are exact: `--fault-inject STEP:stop` makes ckpt stop itself
with SIGSTOP at STEP, and the harness waits for that state before it acts.

Exit code: 0 pass, 1 fail.
"""

import hashlib
import json
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

CMD_TIMEOUT = 40


class Ctx:
    def __init__(self, args, name):
        self.args = args
        self.deadline = ztlib.Deadline(args.timeout)
        self.tmp = ztlib.make_tmpdir("images-" + name)
        self.img = os.path.join(self.tmp, "img")
        self.ckpt = ztlib.Ckpt(args.ckpt, self.tmp)
        self.progs = []
        self.started = []
        self.n = 0
        self.t0 = time.monotonic()

    def step(self, msg):
        log("  [%6.2f s] %s" % (time.monotonic() - self.t0, msg))

    def run(self, args, tag):
        return self.ckpt.run(args, tag, self.deadline.timeout(CMD_TIMEOUT))

    def start(self, args, tag):
        s = self.ckpt.start(args, tag)
        self.started.append(s)
        return s

    def ok(self, args, tag, what):
        res = self.run(args, tag)
        if res.timed_out or res.rc != 0:
            raise TestFailure("%s failed: %s" % (what, res.describe()))
        return res

    def refused(self, args, tag, what, needle):
        res = self.run(args, tag)
        ztlib.check_clean_error(res, what)
        check_error_line(res, what, needle)
        self.step("%s: refused: %s" % (what, res.err.strip()))
        return res

    def program(self, name="counter"):
        self.n += 1
        work = os.path.join(self.tmp, "work%d" % self.n)
        os.mkdir(work)
        prog = ztlib.Program(name, self.args.bindir, work)
        self.progs.append(prog)
        prog.wait_ready(self.deadline.timeout(30))
        self.step("started zt_%s, pid %d" % (name, prog.pid))
        return prog

    def finish_program(self, prog, how="the original"):
        """SIGTERM; the program must exit 0 and print PASS."""
        os.kill(prog.pid, signal.SIGTERM)
        try:
            rc = prog.proc.wait(timeout=self.deadline.timeout(20))
        except subprocess.TimeoutExpired:
            raise TestFailure("%s zt_%s did not exit after SIGTERM" % (how, prog.name))
        prog.check_result(ztlib.describe_rc(rc), rc == 0)
        self.step("%s zt_%s (pid %d) passes" % (how, prog.name, prog.pid))

    def unharmed(self, prog, before, what):
        if prog.proc.poll() is not None:
            raise TestFailure("%s: the target died: %s" % (what, ztlib.describe_rc(prog.proc.returncode)))
        bad = ztlib.traced_or_stopped(prog.pid)
        if bad:
            raise TestFailure("%s: the target %s" % (what, bad))
        problems = ztlib.compare_state(before, ztlib.visible_state(prog.pid), False)
        if problems:
            raise TestFailure("%s changed the target:\n  %s" % (what, ztlib.state_problems_text(problems)))

    def dump_kill(self, prog, img, extra=(), tag="dump"):
        """A default-mode dump: the target is killed and reaped; returns its visible state."""
        before = ztlib.visible_state(prog.pid)
        self.ok(["dump", "--pid", prog.pid, "-o", img] + list(extra), tag, "dump of pid %d" % prog.pid)
        try:
            prog.proc.wait(timeout=self.deadline.timeout(10))
        except subprocess.TimeoutExpired:
            raise TestFailure("pid %d still alive after a dump without --leave-running" % prog.pid)
        return before

    def restore_and_finish(self, prog, img, before, extra=()):
        """Restore img in the foreground; the restored program must pass."""
        started = self.start(["restore", "-D", img] + list(extra), "restore")
        ztlib.wait_restored(started, prog.pid, before, self.deadline.timeout(30), (), prog.output)
        self.step("restored pid %d from %s" % (prog.pid, os.path.basename(img)))
        os.kill(prog.pid, signal.SIGTERM)
        res = ztlib.Ckpt.finish(started, self.deadline.timeout(20))
        if res.timed_out:
            raise TestFailure("restored zt_%s did not finish after SIGTERM" % prog.name)
        prog.check_result("ckpt restore " + ztlib.describe_rc(res.rc), res.rc == 0)
        self.step("restored zt_%s passes" % prog.name)

    def cleanup(self):
        for s in self.started:
            if s[0].poll() is None:
                s[0].kill()
                s[0].wait()
        for p in self.progs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        return ztlib.kill_descendants("images cleanup")


def check_error_line(res, what, needle):
    line = res.err.strip()
    if not line.startswith("ckpt: error: "):
        raise TestFailure("%s: the error does not start with 'ckpt: error: ': %r" % (what, line))
    for n in ([needle] if isinstance(needle, str) else needle):
        if n not in line:
            raise TestFailure("%s: the error does not say %r: %r" % (what, n, line))


def digest(dir_):
    out = {}
    for f in sorted(os.listdir(dir_)):
        with open(os.path.join(dir_, f), "rb") as fh:
            out[f] = hashlib.sha256(fh.read()).hexdigest()
    return out


def listing(dir_):
    return sorted(os.listdir(dir_))


def image_pid(ctx, img):
    doc = json.loads(ctx.ok(["info", "--json", img], "info-json", "info --json").out)
    return doc["processes"][0]["pid"]


def wait_stopped(ctx, proc, what):
    """Wait until a ckpt started with --fault-inject STEP:stop has stopped itself."""
    end = time.monotonic() + ctx.deadline.timeout(CMD_TIMEOUT)
    while True:
        if proc.poll() is not None:
            raise TestFailure("%s exited (%s) instead of stopping at its fault point"
                              % (what, ztlib.describe_rc(proc.returncode)))
        try:
            if ztlib.proc_stat(proc.pid)["state"] == "T":
                return
        except (OSError, ValueError):
            pass
        if time.monotonic() >= end:
            raise TestFailure("%s did not reach its stop point in time" % what)
        time.sleep(0.01)


# ------------------------------------------------------------------------------ cases


def case_existing_image(ctx):
    a = ctx.program()
    before_a = ctx.dump_kill(a, ctx.img)
    image = digest(ctx.img)
    if listing(ctx.img) != ["data.img", "meta.img"]:
        raise TestFailure("the image directory holds %s" % listing(ctx.img))
    b = ctx.program()
    before_b = ztlib.visible_state(b.pid)
    for extra in ([], ["--leave-running"]):
        ctx.refused(["dump", "--pid", b.pid, "-o", ctx.img] + extra, "dump-refused",
                    "dump %sinto a directory holding an image" % ("".join(e + " " for e in extra)),
                    [ctx.img + " already holds an image", "--overwrite"])
        ctx.unharmed(b, before_b, "the refused dump")
    if digest(ctx.img) != image:
        raise TestFailure("the refused dump changed the image: %s -> %s" % (image, digest(ctx.img)))
    ctx.step("the image is byte for byte intact, the second target runs on unharmed")
    ctx.restore_and_finish(a, ctx.img, before_a)
    ctx.finish_program(b)


def case_overwrite(ctx):
    a = ctx.program()
    ctx.ok(["dump", "--pid", a.pid, "-o", ctx.img, "--leave-running"], "dump-a", "dump of a")
    old = digest(ctx.img)
    # an overwrite killed before it is complete leaves the old image as it was
    c = ctx.program()
    killed = ctx.start(["dump", "--pid", c.pid, "-o", ctx.img, "--overwrite", "--leave-running",
                        "--fault-inject", "write-image:stop"], "dump-c-killed")
    wait_stopped(ctx, killed[0], "the overwriting dump")
    os.kill(killed[0].pid, signal.SIGKILL)
    killed[0].wait()
    now = digest(ctx.img)
    if {k: now.get(k) for k in old} != old or ".meta.img.partial" not in now:
        raise TestFailure("a killed --overwrite dump changed the old image or left no partial file: %s -> %s"
                          % (old, now))
    ctx.ok(["info", "--verify", ctx.img], "info-verify-old", "info --verify of the old image after a killed overwrite")
    if image_pid(ctx, ctx.img) != a.pid:
        raise TestFailure("after a killed overwrite the image is not of pid %d" % a.pid)
    ctx.step("a --overwrite dump SIGKILLed before its commit left the old image intact")
    b = ctx.program()
    before_b = ctx.dump_kill(b, ctx.img, ["--overwrite"], "dump-b-overwrite")
    if listing(ctx.img) != ["data.img", "meta.img"]:
        raise TestFailure("after --overwrite the directory holds %s" % listing(ctx.img))
    new = digest(ctx.img)
    if new["meta.img"] == old["meta.img"] or new["data.img"] == old["data.img"]:
        raise TestFailure("--overwrite left (part of) the old image: %s -> %s" % (old, new))
    if image_pid(ctx, ctx.img) != b.pid:
        raise TestFailure("after --overwrite the image is not of pid %d" % b.pid)
    ctx.ok(["info", "--verify", ctx.img], "info-verify", "info --verify of the new image")
    ctx.step("--overwrite replaced the image of pid %d by one of pid %d" % (a.pid, b.pid))
    ctx.restore_and_finish(b, ctx.img, before_b)
    ctx.finish_program(a)
    ctx.finish_program(c)


def case_concurrent_race(ctx):
    progs = [ctx.program(), ctx.program()]
    befores = [ztlib.visible_state(p.pid) for p in progs]
    started = [ctx.start(["dump", "--pid", p.pid, "-o", ctx.img, "--leave-running"], "dump-%d" % i)
               for i, p in enumerate(progs)]
    results = [ztlib.Ckpt.finish(s, ctx.deadline.timeout(CMD_TIMEOUT)) for s in started]
    winners = [i for i, r in enumerate(results) if r.rc == 0 and not r.timed_out]
    if len(winners) != 1:
        raise TestFailure("%d of two concurrent dumps succeeded:\n  %s"
                          % (len(winners), "\n  ".join(r.describe() for r in results)))
    w = winners[0]
    loser = results[1 - w]
    ztlib.check_clean_error(loser, "the losing concurrent dump")
    line = loser.err.strip()
    if "is being written by another dump" not in line and "already holds an image" not in line:
        raise TestFailure("the losing dump does not say the directory is taken: %r" % line)
    ctx.step("dump %d won; the other: %s" % (w, line))
    for p, b in zip(progs, befores):
        ctx.unharmed(p, b, "the concurrent dumps")
    if listing(ctx.img) != ["data.img", "meta.img"]:
        raise TestFailure("the image directory holds %s" % listing(ctx.img))
    if image_pid(ctx, ctx.img) != progs[w].pid:
        raise TestFailure("the image is not of the winner's target (pid %d)" % progs[w].pid)
    ctx.ok(["info", "--verify", ctx.img], "info-verify", "info --verify of the surviving image")
    # restore the winner's image in place of its original
    winner = progs[w]
    os.kill(winner.pid, signal.SIGKILL)
    winner.proc.wait()
    # The winner ran on after its --leave-running dump and appended to its file since.
    ctx.restore_and_finish(winner, ctx.img, befores[w], ["--allow-changed-files"])
    ctx.finish_program(progs[1 - w])


def case_concurrent_held(ctx):
    a, b = ctx.program(), ctx.program()
    before_a, before_b = ztlib.visible_state(a.pid), ztlib.visible_state(b.pid)
    first = ctx.start(["dump", "--pid", a.pid, "-o", ctx.img, "--leave-running",
                       "--fault-inject", "memory:stop"], "dump-first")
    wait_stopped(ctx, first[0], "the first dump")
    ctx.step("the first dump (pid %d) is stopped in the middle of its memory transfer" % first[0].pid)
    ctx.refused(["dump", "--pid", b.pid, "-o", ctx.img, "--leave-running"], "dump-second",
                "a second dump while the first holds the directory",
                "%s is being written by another dump (pid %d)" % (ctx.img, first[0].pid))
    ctx.refused(["info", ctx.img], "info-held", "info while a dump writes the directory",
                "partial files of an unfinished dump are there: a dump is writing it now")
    ctx.unharmed(b, before_b, "the refused second dump")
    os.kill(first[0].pid, signal.SIGCONT)
    res = ztlib.Ckpt.finish(first, ctx.deadline.timeout(CMD_TIMEOUT))
    if res.timed_out or res.rc != 0:
        raise TestFailure("the first dump failed after SIGCONT: " + res.describe())
    ctx.unharmed(a, before_a, "the first dump")
    if listing(ctx.img) != ["data.img", "meta.img"] or image_pid(ctx, ctx.img) != a.pid:
        raise TestFailure("the image directory holds %s, not an image of pid %d" % (listing(ctx.img), a.pid))
    ctx.ok(["info", "--verify", ctx.img], "info-verify", "info --verify")
    ctx.step("the first dump completed its image")
    ctx.finish_program(a)
    ctx.finish_program(b)


def case_killed_dump(ctx):
    a = ctx.program()
    first = ctx.start(["dump", "--pid", a.pid, "-o", ctx.img, "--leave-running",
                       "--fault-inject", "memory:stop"], "dump-killed")
    wait_stopped(ctx, first[0], "the dump")
    os.kill(first[0].pid, signal.SIGKILL)
    first[0].wait()
    left = listing(ctx.img)
    for f in (".meta.img.partial", ".data.img.partial"):
        if f not in left:
            raise TestFailure("the killed dump left no %s (directory: %s): nothing to test" % (f, left))
    if os.path.getsize(os.path.join(ctx.img, ".data.img.partial")) <= 4096:
        raise TestFailure("the killed dump had written no page data yet: nothing to test")
    ctx.step("SIGKILLed the dump in its memory transfer; left behind: %s" % left)
    # the first target's fate after its tracer's SIGKILL is not this test's business
    a.proc.kill()
    a.proc.wait()
    ctx.refused(["info", ctx.img], "info-partial", "info on the killed dump's directory",
                "partial files of an unfinished dump are there: it was interrupted")
    b = ctx.program()
    before_b = ztlib.visible_state(b.pid)
    res = ctx.ok(["dump", "--pid", b.pid, "-o", ctx.img, "--leave-running", "-v"], "dump-next", "the next dump")
    if "removed the partial files of an interrupted dump from %s" % ctx.img not in res.err:
        raise TestFailure("the next dump does not say it removed the partial files:\n%s" % ztlib.indent(res.err))
    if listing(ctx.img) != ["data.img", "meta.img"]:
        raise TestFailure("after the next dump the directory holds %s" % listing(ctx.img))
    ctx.ok(["info", "--verify", ctx.img], "info-verify", "info --verify")
    ctx.unharmed(b, before_b, "the next dump")
    ctx.step("the next dump removed the partial files and wrote a complete image")
    ctx.finish_program(b)


def case_failed_dump(ctx):
    a = ctx.program()
    before = ztlib.visible_state(a.pid)
    missing = os.path.join(ctx.tmp, "new-dir")
    ctx.refused(["dump", "--pid", a.pid, "-o", missing, "--fault-inject", "files"], "dump-fail-new",
                "a failing dump into a new directory", "injected fault")
    if os.path.lexists(missing):
        raise TestFailure("the failed dump left the directory it created: %s" % listing(missing))
    ctx.refused(["dump", "--pid", ztlib.free_pid(), "-o", missing], "dump-nopid",
                "a dump of a free pid into a new directory", "ckpt: error: ")
    if os.path.lexists(missing):
        raise TestFailure("the refused dump left the directory it created")
    os.mkdir(ctx.img)
    ctx.refused(["dump", "--pid", a.pid, "-o", ctx.img, "--fault-inject", "write-image"], "dump-fail-old",
                "a failing dump into an existing directory", "injected fault")
    if not os.path.isdir(ctx.img) or listing(ctx.img):
        raise TestFailure("the failed dump did not leave the existing directory empty: %s"
                          % (listing(ctx.img) if os.path.isdir(ctx.img) else "gone"))
    ctx.unharmed(a, before, "the failed dumps")
    ctx.step("failed dumps removed what they created and kept what was there")
    ctx.finish_program(a)


def case_info_verify(ctx):
    a = ctx.program()
    ctx.ok(["dump", "--pid", a.pid, "-o", ctx.img, "--leave-running"], "dump", "dump")
    ctx.ok(["info", "--verify", ctx.img], "info-verify-ok", "info --verify of an intact image")
    doc = json.loads(ctx.ok(["info", "--json", ctx.img], "info-json", "info --json").out)
    # JSON: 64-bit values are strings, addresses hex strings, enums names
    v = doc["vmas"][0]
    if not (isinstance(v["start"], str) and v["start"].startswith("0x") and int(v["start"], 16) > 0):
        raise TestFailure("info --json: vma start is not a hex string: %r" % (v["start"],))
    if v["kind"] not in ("anon", "file", "heap", "stack", "vdso", "vvar", "vvar_vclock", "vsyscall"):
        raise TestFailure("info --json: vma kind is not a name: %r" % (v["kind"],))
    if not isinstance(doc["header"]["created_unix_ns"], str) or not isinstance(doc["end"]["data_size"], str):
        raise TestFailure("info --json: 64-bit values are not strings: %r %r"
                          % (doc["header"]["created_unix_ns"], doc["end"]["data_size"]))
    if not isinstance(doc["threads"][0]["tid"], int):
        raise TestFailure("info --json: a 32-bit tid is not a number")
    if not doc["page_runs"]:
        raise TestFailure("the image has no page runs: nothing to damage")
    run = doc["page_runs"][len(doc["page_runs"]) // 2]
    idx = doc["page_runs"].index(run) + 1
    off = int(run["data_offset"], 16) + int(run["nr_pages"]) * 4096 // 2
    with open(os.path.join(ctx.img, "data.img"), "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x5A]))
    ctx.step("flipped the byte at offset %#x of data.img (page run %d)" % (off, idx))
    ctx.ok(["info", ctx.img], "info-plain", "plain info (does not read page data)")
    ctx.refused(["info", "--verify", ctx.img], "info-verify-bad", "info --verify of a damaged image",
                ["data.img is corrupt: checksum mismatch in page run %d of %d" % (idx, len(doc["page_runs"])),
                 run["addr"]])
    ctx.refused(["info", "--verify", "--json", ctx.img], "info-verify-json-bad",
                "info --verify --json of a damaged image", "checksum mismatch")
    ctx.finish_program(a)


def case_cli_errors(ctx):
    cases = [
        ([], "A subcommand is required"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["dump"], "--pid is required"),
        (["dump", "--pid", "1"], "--images-dir is required"),
        (["dump", "--pid", "x", "-o", ctx.img], "--pid"),
        (["dump", "--pid", "1", "-o", ctx.img, "--no-such-option"], "--no-such-option"),
        (["dump", "--pid", "0", "-o", ctx.img], "positive --pid"),
        (["dump", "--pid", "1", "-o", ctx.img, "--fault-inject", "nope"], "unknown fault-injection step"),
        (["restore"], "--images-dir is required"),
        (["info"], "dir is required"),
        (["info", "a", "b"], "not expected"),
    ]
    for argv, needle in cases:
        ctx.refused(argv, "cli", "`ckpt %s`" % " ".join(argv), needle)
        if ctx.run(argv, "cli").rc != 1:
            raise TestFailure("`ckpt %s` does not exit 1" % " ".join(argv))
    if os.path.lexists(ctx.img):
        raise TestFailure("a refused command line created %s" % ctx.img)
    for argv in (["--help"], ["dump", "--help"], ["restore", "--help"], ["info", "--help"], ["--version"],
                 ["dump", "--list-fault-steps"]):
        res = ctx.ok(argv, "help", "`ckpt %s`" % " ".join(argv))
        if not res.out.strip() or res.err.strip():
            raise TestFailure("`ckpt %s`: output on stdout expected, nothing on stderr: %s"
                              % (" ".join(argv), res.describe()))
    text = ctx.ok(["dump", "--help"], "help", "dump --help").out
    for opt in ("--pid", "--images-dir"):
        line = [l for l in text.splitlines() if opt in l]
        if not line or "REQUIRED" not in line[0]:
            raise TestFailure("`dump --help` does not mark %s REQUIRED:\n%s" % (opt, ztlib.indent(text)))
    if "--overwrite" not in text:
        raise TestFailure("`dump --help` does not show --overwrite")
    if "--verify" not in ctx.ok(["info", "--help"], "help", "info --help").out:
        raise TestFailure("`info --help` does not show --verify")
    ctx.step("%d bad command lines: one line each, exit 1; help and version exit 0" % len(cases))


def case_verbose_anywhere(ctx):
    a = ctx.program()
    for n, (pre, post, want, unwanted) in enumerate([
            ([], ["-v"], "ckpt: dumped process", "ckpt: froze process"),
            (["-v"], [], "ckpt: dumped process", "ckpt: froze process"),
            ([], ["-vv"], "ckpt: froze process", None),
            (["-v"], ["-v"], "ckpt: froze process", None),
            ([], [], None, "ckpt: ")]):
        img = os.path.join(ctx.tmp, "img%d" % n)
        argv = pre + ["dump", "--pid", a.pid, "-o", img, "--leave-running"] + post
        res = ctx.ok(argv, "dump-v", "`ckpt %s`" % " ".join(str(x) for x in argv))
        if want and want not in res.err:
            raise TestFailure("`ckpt %s` did not log %r:\n%s" % (" ".join(str(x) for x in argv), want,
                                                               ztlib.indent(res.err)))
        if unwanted and unwanted in res.err:
            raise TestFailure("`ckpt %s` logged %r at this verbosity:\n%s"
                              % (" ".join(str(x) for x in argv), unwanted, ztlib.indent(res.err)))
    res = ctx.ok(["info", os.path.join(ctx.tmp, "img0"), "-v"], "info-v", "info DIR -v")
    ctx.step("-v and -vv work before and after the subcommand")
    ctx.finish_program(a)


def case_dir_reasons(ctx):
    a = ctx.program()
    ctx.ok(["dump", "--pid", a.pid, "-o", ctx.img, "--leave-running"], "dump", "dump")
    regular = os.path.join(ctx.tmp, "a-file")
    with open(regular, "w") as f:
        f.write("not an image\n")
    missing = os.path.join(ctx.tmp, "missing")
    for cmd in (["restore", "-D"], ["info"]):
        ctx.refused(cmd + [regular], "file", "%s on a regular file" % cmd[0], regular + ": not a directory")
        ctx.refused(cmd + [missing], "missing", "%s on a missing directory" % cmd[0],
                    missing + ": no such directory")
    ctx.refused(["dump", "--pid", a.pid, "-o", regular], "dump-file", "dump into a regular file",
                regular + ": not a directory")
    # an image the user may not read (root reads anything: run info as nobody)
    # (a copy of ckpt in tmp: the build tree may be somewhere nobody cannot reach, like /root)
    os.chmod(ctx.tmp, 0o755)
    mine = os.path.join(ctx.tmp, "ckpt-copy")
    shutil.copy(ctx.args.ckpt, mine)
    os.chmod(mine, 0o755)
    res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", mine,
                          "info", ctx.img], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=ctx.deadline.timeout(CMD_TIMEOUT))
    res = ztlib.CkptResult(["ckpt", "info", ctx.img], res.returncode, res.stdout, res.stderr, 0, False)
    ztlib.check_clean_error(res, "info as nobody")
    check_error_line(res, "info as nobody", ["Permission denied"])
    if "no complete image" in res.err:
        raise TestFailure("info as nobody blames the image: %r" % res.err.strip())
    ctx.step("info as nobody: %s" % res.err.strip())
    empty = os.path.join(ctx.tmp, "empty")
    os.mkdir(empty)
    ctx.refused(["restore", "-D", empty], "empty", "restore from an empty directory",
                "holds no complete image (meta.img is missing)")
    ctx.finish_program(a)


def case_zombie_pid(ctx):
    a = ctx.program()
    before = ztlib.visible_state(a.pid)
    ctx.ok(["dump", "--pid", a.pid, "-o", ctx.img], "dump", "dump")
    # the dump killed it; we are its parent and have not reaped it yet
    end = time.monotonic() + ctx.deadline.timeout(10)
    while ztlib.proc_stat(a.pid)["state"] != "Z":
        if time.monotonic() > end:
            raise TestFailure("pid %d did not become a zombie after the dump" % a.pid)
        time.sleep(0.01)
    ctx.refused(["restore", "-D", ctx.img], "restore-zombie", "restore while the pid is a zombie",
                "pid %d is in use by a zombie (exited, not yet reaped by its parent %d)" % (a.pid, os.getpid()))
    a.proc.wait()
    ctx.restore_and_finish(a, ctx.img, before)


CASES = {
    "existing-image": case_existing_image,
    "overwrite": case_overwrite,
    "concurrent-race": case_concurrent_race,
    "concurrent-held": case_concurrent_held,
    "killed-dump": case_killed_dump,
    "failed-dump": case_failed_dump,
    "info-verify": case_info_verify,
    "cli-errors": case_cli_errors,
    "verbose-anywhere": case_verbose_anywhere,
    "dir-reasons": case_dir_reasons,
    "zombie-pid": case_zombie_pid,
}


def main():
    return ztlib.case_main("images", __doc__, CASES, Ctx, lambda ctx: {s[0].pid for s in ctx.started})


if __name__ == "__main__":
    sys.exit(main())
