#!/usr/bin/env python3
"""Shared helpers for the ckpt end-to-end test scripts (zdtm.py, badinput.py, faults.py).

Python 3 standard library only. Linux only (reads /proc).

Conventions:
  * A test program zt_NAME is started in a fresh work directory, in its own
    session, with stdin /dev/null (or a pty slave), stdout and stderr appended
    to WORKDIR/out.log.
  * ckpt itself runs with stdin /dev/null (or the pty slave) and its stdout and
    stderr in files next to the work directory (never pipes: a restored process
    must not be able to inherit a pipe the harness waits on).
  * The harness makes itself a child subreaper, so everything it starts -
    including processes ckpt restores and then leaves - stays its descendant and
    can be found and killed at the end.
"""

import argparse
import ctypes
import difflib
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PR_SET_CHILD_SUBREAPER = 36


class TestFailure(Exception):
    """A check failed; the message says which."""


class Deadline:
    """An overall deadline; phases take min(their own timeout, what is left)."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return self.end - time.monotonic()

    def timeout(self, phase_timeout):
        t = min(phase_timeout, self.left())
        if t <= 0:
            raise TestFailure("overall time limit of the test exceeded")
        return t


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------------------
# process plumbing


def set_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(err))


class _Interrupted(BaseException):
    pass


def install_signal_handlers():
    """SIGTERM/SIGINT/SIGHUP to the harness unwind it so that cleanup runs."""

    def handler(sig, frame):
        raise _Interrupted("harness got signal %d" % sig)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, handler)


def read_text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def proc_stat(pid):
    """Fields of /proc/PID/stat after the comm field: dict with state, ppid, pgrp, session,
    flags, and exit_code (field 52: the wait status of a zombie; None if not shown)."""
    s = read_text("/proc/%d/stat" % pid)
    rest = s[s.rindex(")") + 2:].split()
    return {"state": rest[0], "ppid": int(rest[1]), "pgrp": int(rest[2]), "session": int(rest[3]),
            "flags": int(rest[6]), "exit_code": int(rest[49]) if len(rest) > 49 else None}


def parse_status(text):
    d = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        d[k] = v.strip()
    return d


def proc_status(pid):
    return parse_status(read_text("/proc/%d/status" % pid))


def pid_exists(pid):
    """True if /proc/PID exists (zombies included)."""
    return os.path.exists("/proc/%d" % pid)


def pid_running(pid):
    """True if pid exists and is not a zombie/dead."""
    try:
        return proc_stat(pid)["state"] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return False


def all_ppids():
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            out[int(d)] = proc_stat(int(d))["ppid"]
        except (OSError, ValueError, IndexError):
            pass
    return out


def descendants(root=None):
    """Set of pids of all live descendants of root (default: this process)."""
    root = os.getpid() if root is None else root
    ppids = all_ppids()
    children = {}
    for p, pp in ppids.items():
        children.setdefault(pp, []).append(p)
    out, todo = set(), [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def reap_nohang():
    """Reap any exited children without blocking (only use when no Popen still needs its status)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_descendants(reason=""):
    """SIGKILL every descendant (repeatedly, as new ones may appear) and reap them.
    Returns the list of pids that had to be killed."""
    killed = []
    for _ in range(50):
        pids = descendants()
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
                killed.append(p)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        reap_nohang()
    reap_nohang()
    if killed and reason:
        log("  cleanup (%s): killed leftover processes %s" % (reason, sorted(set(killed))))
    return sorted(set(killed))


def wait_gone(pids, timeout):
    """Wait until none of pids exists any more (zombies included), reaping every exited child
    of the harness meanwhile (the orphans of a killed tree are ours: child subreaper).
    Returns the sorted list of those still there after timeout (empty if all are gone)."""
    end = time.monotonic() + timeout
    while True:
        reap_nohang()
        left = sorted(p for p in pids if pid_exists(p))
        if not left or time.monotonic() >= end:
            return left
        time.sleep(0.02)


def wait_pid_exit(pid, timeout):
    """waitpid(pid) with a timeout, for a child that is not managed by a Popen object
    (e.g. a process reparented to us as subreaper). Returns the raw wait status or None."""
    end = time.monotonic() + timeout
    while True:
        try:
            p, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            raise TestFailure("pid %d is not a child of the harness (cannot wait for it)" % pid)
        if p == pid:
            return status
        if time.monotonic() >= end:
            return None
        time.sleep(0.02)


def describe_status(status):
    if os.WIFEXITED(status):
        return "exit code %d" % os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return "killed by signal %d (%s)" % (os.WTERMSIG(status), signal.Signals(os.WTERMSIG(status)).name)
    return "wait status %#x" % status


def describe_rc(rc):
    """Popen returncode: negative means killed by a signal."""
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = "?"
        return "killed by signal %d (%s)" % (-rc, name)
    return "exit code %d" % rc


def traced_or_stopped(pid):
    """None if pid runs normally, else a description of the problem. Looks at every
    thread (/proc/PID/task/*): none may be traced or stopped."""
    try:
        st = proc_status(pid)
    except (FileNotFoundError, ProcessLookupError):
        return "process %d does not exist" % pid
    problems = []
    if st.get("TracerPid", "0") != "0":
        problems.append("is traced (TracerPid %s)" % st.get("TracerPid"))
    state = st.get("State", "?")
    if state[:1] in ("T", "t"):
        problems.append("is stopped (State: %s)" % state)
    if state[:1] in ("Z", "X"):
        problems.append("is dead (State: %s)" % state)
    if not problems:
        try:
            tids = sorted(int(t) for t in os.listdir("/proc/%d/task" % pid) if t.isdigit())
        except (FileNotFoundError, ProcessLookupError):
            tids = []
        for tid in tids:
            if tid == pid:
                continue
            try:
                ts = parse_status(read_text("/proc/%d/task/%d/status" % (pid, tid)))
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited meanwhile
            tstate = ts.get("State", "?")
            if ts.get("TracerPid", "0") != "0":
                problems.append("thread %d is traced (TracerPid %s)" % (tid, ts.get("TracerPid")))
            if tstate[:1] in ("T", "t"):
                problems.append("thread %d is stopped (State: %s)" % (tid, tstate))
    return ("process %d " % pid + ", ".join(problems)) if problems else None


# --------------------------------------------------------------------------------------
# running ckpt


class CkptResult:
    def __init__(self, argv, rc, out, err, elapsed, timed_out):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        self.elapsed, self.timed_out = elapsed, timed_out

    def describe(self):
        s = "`%s`: %s after %.2f s" % (" ".join(self.argv), "TIMED OUT" if self.timed_out else describe_rc(self.rc),
                                       self.elapsed)
        if self.err.strip():
            s += "\n    stderr: " + "\n    stderr: ".join(self.err.rstrip("\n").split("\n")[-20:])
        return s


class Ckpt:
    def __init__(self, binary, logdir):
        self.binary = binary
        self.logdir = logdir
        self.n = 0

    def _files(self, tag):
        self.n += 1
        base = os.path.join(self.logdir, "ckpt-%02d-%s" % (self.n, tag))
        return base + ".out", base + ".err"

    def start(self, args, tag, stdin=None):
        """Start ckpt in the background; returns (Popen, out_path, err_path, t0)."""
        outp, errp = self._files(tag)
        argv = [self.binary] + [str(a) for a in args]
        with open(outp, "wb") as o, open(errp, "wb") as e:
            p = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                 stdout=o, stderr=e, close_fds=True)
        p.zt_argv = argv
        return p, outp, errp, time.monotonic()

    @staticmethod
    def finish(started, timeout):
        """Wait for a ckpt started with start(); kill it (and only it) on timeout."""
        p, outp, errp, t0 = started
        timed_out = False
        try:
            p.wait(timeout=max(timeout, 0.01))
        except subprocess.TimeoutExpired:
            timed_out = True
            p.kill()
            p.wait()
        return CkptResult(p.zt_argv, p.returncode, read_text(outp), read_text(errp), time.monotonic() - t0,
                          timed_out)

    def run(self, args, tag, timeout, stdin=None):
        return self.finish(self.start(args, tag, stdin), timeout)


def check_clean_error(res, what):
    """A refused operation: non-zero exit, no crash signal, exactly one non-empty stderr line."""
    problems = []
    if res.timed_out:
        problems.append("did not finish in time")
    elif res.rc == 0:
        problems.append("succeeded (exit code 0) but must fail")
    elif res.rc < 0 or res.rc >= 128:
        problems.append("crashed or was killed: %s" % describe_rc(res.rc))
    err = res.err
    if err.endswith("\n"):
        err = err[:-1]
    if err == "" or err.strip() == "":
        problems.append("printed no error message on stderr")
    elif "\n" in err:
        problems.append("printed %d lines on stderr, expected exactly one" % (err.count("\n") + 1))
    if problems:
        raise TestFailure("%s: %s\n  %s" % (what, "; ".join(problems), res.describe()))


# --------------------------------------------------------------------------------------
# test programs


class Program:
    """A zt_NAME test program started per the zdtm protocol."""

    def __init__(self, name, bindir, workdir, args=(), stdin_fd=None, env=None):
        self.name = name
        self.path = os.path.join(bindir, "zt_" + name)
        if not os.access(self.path, os.X_OK):
            raise TestFailure("test program %s not found or not executable" % self.path)
        self.workdir = workdir
        self.log_path = os.path.join(workdir, "out.log")
        logfd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self.proc = subprocess.Popen([self.path] + list(args), cwd=workdir,
                                         stdin=stdin_fd if stdin_fd is not None else subprocess.DEVNULL,
                                         stdout=logfd, stderr=logfd, close_fds=True, start_new_session=True,
                                         env=env)
        finally:
            os.close(logfd)
        self.pid = self.proc.pid

    def output(self):
        try:
            return read_text(self.log_path)
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout):
        end = time.monotonic() + timeout
        while True:
            out = self.output()
            if "READY\n" in out:
                if not out.startswith("READY\n"):
                    raise TestFailure("zt_%s wrote something before READY:\n%s" % (self.name, indent(out)))
                return
            if self.proc.poll() is not None:
                raise TestFailure("zt_%s exited (%s) before READY; output:\n%s"
                                  % (self.name, describe_rc(self.proc.returncode), indent(out)))
            if time.monotonic() >= end:
                raise TestFailure("zt_%s did not print READY within %.0f s; output:\n%s"
                                  % (self.name, timeout, indent(out)))
            time.sleep(0.01)

    def check_result(self, status_desc, ok_exit):
        """Both conditions of the protocol: exit code 0 and a PASS line; READY exactly once."""
        out = self.output()
        lines = [l for l in out.split("\n") if l != "" and not l.startswith("# ")]
        problems = []
        if not ok_exit:
            problems.append("program status: %s (expected exit code 0)" % status_desc)
        if lines.count("READY") != 1:
            problems.append("READY printed %d times (a restore must not re-run the program)" % lines.count("READY"))
        fails = [l for l in lines if l.startswith("FAIL")]
        if fails:
            problems.append("the program reported: " + " | ".join(fails))
        if not lines or lines[-1] != "PASS":
            problems.append("the last line of output is not PASS")
        if problems:
            raise TestFailure("zt_%s did not pass: %s\n  output:\n%s" % (self.name, "; ".join(problems), indent(out)))


def indent(text, prefix="    | "):
    text = text if text.endswith("\n") or not text else text + "\n"
    return "".join(prefix + l + "\n" for l in text.split("\n")[:-1]) or prefix + "(empty)\n"


# --------------------------------------------------------------------------------------
# visible process state (CRIU zdtm style): maps, fds, signal masks, ids, links


STATUS_KEYS = ("SigBlk", "SigIgn", "SigCgt", "SigPnd", "ShdPnd", "Umask")
# per thread (/proc/PID/task/TID/status), plus its comm
THREAD_STATUS_KEYS = ("SigBlk", "SigPnd", "Cpus_allowed_list")


def read_threads(pid):
    """{tid: (comm, SigBlk, SigPnd, Cpus_allowed_list)} of every thread of pid."""
    threads = {}
    base = "/proc/%d/task" % pid
    for name in os.listdir(base):
        if not name.isdigit():
            continue
        try:
            comm = read_text("%s/%s/comm" % (base, name)).rstrip("\n")
            ts = parse_status(read_text("%s/%s/status" % (base, name)))
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
        threads[int(name)] = (comm,) + tuple(ts.get(k) for k in THREAD_STATUS_KEYS)
    return threads


def read_fds(pid):
    fds = {}
    base = "/proc/%d/fd" % pid
    for name in os.listdir(base):
        try:
            target = os.readlink(os.path.join(base, name))
            flags = None
            for line in read_text("/proc/%d/fdinfo/%s" % (pid, name)).splitlines():
                if line.startswith("flags:"):
                    flags = line.split()[1]
            fds[int(name)] = (target, flags)
        except FileNotFoundError:
            continue
    return fds


def read_vmflags(pid):
    """[(start, end, "rd wr mr ...")] of every VMA, from /proc/PID/smaps."""
    out = []
    for line in read_text("/proc/%d/smaps" % pid).splitlines():
        m = _MAPS_RE.match(line)
        if m:
            out.append([int(m.group(1), 16), int(m.group(2), 16), None])
        elif line.startswith("VmFlags:") and out:
            out[-1][2] = " ".join(line[8:].split())
    return [tuple(e) for e in out]


def merge_vmflags(entries):
    """Adjacent ranges with the same flags as one: a restore may split or merge VMAs
    differently (see normalize_maps), but every address must keep its flags."""
    out = []
    for start, end, flags in entries:
        if out and out[-1][1] == start and out[-1][2] == flags:
            out[-1][1] = end
        else:
            out.append([start, end, flags])
    return ["%x-%x %s" % tuple(e) for e in out]


def drop_parasite_region(before, after):
    """For a target whose ckpt was SIGKILLed in one of the two windows where the parasite's
    region stays mapped (docs/fail-closed.md): checks that the only change to the maps is
    that one shared anonymous rwx mapping and removes it from `after`. Raises TestFailure
    if anything else changed."""
    extra = [l for l in after["maps"] if l not in before["maps"]]
    if len(extra) > 1 or any("/dev/zero (deleted)" not in l or " rwxs " not in l for l in extra):
        raise TestFailure("maps changed beyond the parasite region: %s" % extra)
    after["maps"] = [l for l in after["maps"] if l not in extra]
    starts = {int(l.split("-")[0], 16) for l in extra}
    if after.get("vmflags") is not None:  # None: not compared (a program that changes them itself)
        after["vmflags"] = [e for e in after["vmflags"] if e[0] not in starts]
    return extra


def drop_parasite_regions(before, after):
    """drop_parasite_region for a whole tree: the program itself and every live process of
    st["tree"] (when both snapshots have one) may each keep one parasite region, since ckpt
    infects the processes of a tree one after the other and may be killed in any one's
    window. Returns [(what, line)] of the regions removed from `after`; raises TestFailure
    if anything else changed in the maps."""
    out = [("the program", l) for l in drop_parasite_region(before, after)]
    tb, ta = before.get("tree"), after.get("tree")
    if tb is None or ta is None:
        return out
    for pid in sorted(set(tb) & set(ta)):
        b, a = tb[pid], ta[pid]
        if b.get("zombie") or a.get("zombie") or b.get("maps") is None or a.get("maps") is None:
            continue
        try:
            extra = drop_parasite_region(b, a)
        except TestFailure as e:
            raise TestFailure("tree process %d (%s): %s" % (pid, b.get("comm"), e))
        out += [("tree process %d (%s)" % (pid, b.get("comm")), l) for l in extra]
    return out


def visible_state(pid, tree=False):
    """Snapshot of what must survive a dump/restore. Raises TestFailure if pid is gone.
    tree=True adds st["tree"], the tree_state of pid's descendants (compared by
    compare_state when both snapshots have it)."""
    try:
        st = {"maps": read_text("/proc/%d/maps" % pid).splitlines()}
        st["vmflags"] = read_vmflags(pid)
        st["fds"] = read_fds(pid)
        status = proc_status(pid)
        for k in STATUS_KEYS:
            st[k] = status.get(k)
        stat = proc_stat(pid)
        st["pgrp"], st["session"] = stat["pgrp"], stat["session"]
        st["comm"] = read_text("/proc/%d/comm" % pid).rstrip("\n")
        st["threads"] = read_threads(pid)
        for link in ("exe", "cwd", "root"):
            try:
                st[link] = os.readlink("/proc/%d/%s" % (pid, link))
            except OSError as e:
                st[link] = "<%s>" % errno.errorcode.get(e.errno, e.errno)
    except (FileNotFoundError, ProcessLookupError):
        raise TestFailure("process %d disappeared while reading its state" % pid)
    if tree:
        st["tree"] = tree_state(pid)
    return st


def tree_state(root):
    """Snapshot of every descendant of root (root itself is covered by visible_state):
    {pid: {ppid, pgrp, session, comm, zombie, exit_code, and for a live process maps, fds
    and the STATUS_KEYS of status}}. A zombie has no maps or fds; its exit_code is the
    wait status it will report. Raises TestFailure if a process vanishes while it is read."""
    tree = {}
    for pid in sorted(descendants(root)):
        try:
            stat = proc_stat(pid)
            e = {"ppid": stat["ppid"], "pgrp": stat["pgrp"], "session": stat["session"],
                 "comm": read_text("/proc/%d/comm" % pid).rstrip("\n"),
                 "zombie": stat["state"] in ("Z", "X")}
            if e["zombie"]:
                e["exit_code"] = stat["exit_code"]
            else:
                e["exit_code"] = None
                e["maps"] = read_text("/proc/%d/maps" % pid).splitlines()
                e["fds"] = read_fds(pid)
                status = proc_status(pid)
                for k in STATUS_KEYS:
                    e[k] = status.get(k)
        except (FileNotFoundError, ProcessLookupError):
            raise TestFailure("process %d of the tree of %d disappeared while reading its state" % (pid, root))
        tree[pid] = e
    return tree


TREE_KEYS = ("ppid", "pgrp", "session", "comm", "zombie", "exit_code") + STATUS_KEYS


def tree_entry_text(pid, e):
    if e is None:
        return "%d: (no such process)" % pid
    what = "zombie, wait status %s" % (e.get("exit_code"),) if e.get("zombie") else "live"
    return "%d (%s, %s): ppid %s pgrp %s session %s" % (pid, e.get("comm"), what, e.get("ppid"), e.get("pgrp"),
                                                       e.get("session"))


def compare_tree(tb, ta, restored):
    """Problems between two tree_state snapshots: the set of pids, and per process its ids,
    comm, zombie state and exit status, signal state, maps and fds (normalized after a
    restore, as for the root)."""
    problems = []
    missing, extra = sorted(set(tb) - set(ta)), sorted(set(ta) - set(tb))
    if missing or extra:
        lines = ["    missing " + tree_entry_text(p, tb[p]) for p in missing]
        lines += ["    new     " + tree_entry_text(p, ta[p]) for p in extra]
        problems.append("the processes of the tree differ (before: %s, after: %s):\n%s"
                        % (sorted(tb), sorted(ta), "\n".join(lines)))
    what = "restore" if restored else "dump"
    for pid in sorted(set(tb) & set(ta)):
        b, a = tb[pid], ta[pid]
        diffs = ["%s %r -> %r" % (k, b.get(k), a.get(k)) for k in TREE_KEYS if b.get(k) != a.get(k)]
        if diffs:
            problems.append("tree process %d (%s) differs: %s" % (pid, b.get("comm"), ", ".join(diffs)))
        if b.get("zombie") or a.get("zombie"):
            continue
        mb, ma = b["maps"], a["maps"]
        if restored:
            mb, ma = normalize_maps(mb), normalize_maps(ma)
        if mb != ma:
            diff = difflib.unified_diff(mb, ma, "maps of %d before dump" % pid, "maps of %d after %s" % (pid, what),
                                        lineterm="", n=2)
            problems.append("/proc/%d/maps (tree process %s) differ%s:\n%s"
                            % (pid, b.get("comm"), " (normalized)" if restored else "",
                               "\n".join("    " + l for l in diff)))
        fb, fa = b["fds"], a["fds"]
        if restored:
            fb = {k: (normalize_fd_target(t), f) for k, (t, f) in fb.items()}
            fa = {k: (normalize_fd_target(t), f) for k, (t, f) in fa.items()}
        if fb != fa:
            lines = ["    fd %d: before %s, after %s" % (fd, fb.get(fd, "(not open)"), fa.get(fd, "(not open)"))
                     for fd in sorted(set(fb) | set(fa)) if fb.get(fd) != fa.get(fd)]
            problems.append("open file descriptors of tree process %d (%s) differ (target, flags):\n%s"
                            % (pid, b.get("comm"), "\n".join(lines)))
    return problems


def tree_traced_or_stopped(tree):
    """Problems (list) of the live processes of a tree_state snapshot: none may be traced,
    stopped or gone."""
    out = []
    for pid, e in sorted(tree.items()):
        if not e.get("zombie"):
            bad = traced_or_stopped(pid)
            if bad:
                out.append("tree " + bad)
    return out


_MAPS_RE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) (\S+) (\d+)\s*(.*)$")


def normalize_maps(lines):
    """For comparing a restored process with the original: inode numbers of
    anonymous shared memory and deleted files are not preserved by any restore,
    and adjacent identical VMAs may be split or merged differently. Everything
    else (ranges, permissions, offsets, device, inode and path of files, special
    names like [heap], [stack], [vdso]) must match."""
    out = []
    for line in lines:
        m = _MAPS_RE.match(line)
        if not m:
            out.append([None, None, line])
            continue
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        perms, off, dev, ino, path = m.group(3), int(m.group(4), 16), m.group(5), m.group(6), m.group(7)
        anon = ino == "0" and not path.startswith("/")
        if path.endswith("(deleted)") or path.startswith("/SYSV") or path.startswith("[anon_shmem"):
            ino = "*"
        key = (perms, dev, ino, path)
        if out and out[-1][0] is not None:
            p = out[-1]
            pstart, pend, pkey, poff = p[0], p[1], p[2], p[3]
            if pend == start and pkey == key and (anon or poff + (pend - pstart) == off):
                p[1] = end
                continue
        out.append([start, end, key, off])
    res = []
    for e in out:
        if e[0] is None:
            res.append(e[2])
        else:
            perms, dev, ino, path = e[2]
            res.append("%x-%x %s %08x %s %s %s" % (e[0], e[1], perms, e[3], dev, ino, path))
    return res


def normalize_fd_target(t):
    t = re.sub(r"^(pipe|socket|anon_inode):\[\d+\]$", r"\1:[*]", t)
    if t.endswith(" (deleted)"):
        t = os.path.dirname(t[:-len(" (deleted)")]) + "/* (deleted)"
    return t


def compare_state(before, after, restored, skip=()):
    """List of problems (strings); empty if equal. restored=True applies the
    normalizations that a restore legitimately cannot avoid (see normalize_maps)."""
    problems = []
    mb, ma = before["maps"], after["maps"]
    if restored and mb is not None and ma is not None:  # None: not compared
        mb, ma = normalize_maps(mb), normalize_maps(ma)
    if mb != ma:
        diff = difflib.unified_diff(mb, ma, "maps before dump", "maps after " + ("restore" if restored else "dump"),
                                    lineterm="", n=2)
        problems.append("/proc/PID/maps differ%s:\n%s" % (" (normalized)" if restored else "",
                                                           "\n".join("    " + l for l in diff)))
    vb, va = before.get("vmflags"), after.get("vmflags")
    if vb is not None and va is not None:
        vb, va = merge_vmflags(vb), merge_vmflags(va)
        if vb != va:
            diff = difflib.unified_diff(vb, va, "VmFlags before dump", "VmFlags after " +
                                        ("restore" if restored else "dump"), lineterm="", n=1)
            problems.append("VmFlags (smaps) differ:\n" + "\n".join("    " + l for l in diff))
    fb, fa = before["fds"], after["fds"]
    if restored:
        fb = {k: (normalize_fd_target(t), f) for k, (t, f) in fb.items()}
        fa = {k: (normalize_fd_target(t), f) for k, (t, f) in fa.items()}
    if fb != fa:
        lines = []
        for fd in sorted(set(fb) | set(fa)):
            if fb.get(fd) != fa.get(fd):
                lines.append("    fd %d: before %s, after %s" % (fd, fb.get(fd, "(not open)"), fa.get(fd, "(not open)")))
        problems.append("open file descriptors differ (target, flags):\n" + "\n".join(lines))
    tb, ta = before.get("threads"), after.get("threads")
    if "threads" not in skip and tb is not None and ta is not None and tb != ta:
        lines = []
        for tid in sorted(set(tb) | set(ta)):
            if tb.get(tid) != ta.get(tid):
                lines.append("    tid %d: before %s, after %s" % (tid, thread_text(tb.get(tid)), thread_text(ta.get(tid))))
        problems.append("threads differ (comm, %s):\n%s" % (", ".join(THREAD_STATUS_KEYS), "\n".join(lines)))
    for k in STATUS_KEYS + ("pgrp", "session", "comm", "exe", "cwd", "root"):
        if k in skip:
            continue
        if before.get(k) != after.get(k):
            problems.append("%s differs: before %r, after %r" % (k, before.get(k), after.get(k)))
    trb, tra = before.get("tree"), after.get("tree")
    if "tree" not in skip and trb is not None and tra is not None:
        problems += compare_tree(trb, tra, restored)
    return problems


def thread_text(t):
    if t is None:
        return "(no such thread)"
    return "comm %r %s" % (t[0], " ".join("%s %s" % (k, v) for k, v in zip(THREAD_STATUS_KEYS, t[1:])))


def state_problems_text(problems):
    return "\n  ".join(problems)


# --------------------------------------------------------------------------------------
# misc


def make_tmpdir(tag):
    return tempfile.mkdtemp(prefix="zdtm-%s-" % re.sub(r"[^A-Za-z0-9_.-]", "_", tag), dir="/tmp")


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)


def free_pid():
    """A pid that is not in use right now (searching down from pid_max)."""
    try:
        pid_max = int(read_text("/proc/sys/kernel/pid_max"))
    except (OSError, ValueError):
        pid_max = 32768
    for pid in range(pid_max - 1, 300, -1):
        if not pid_exists(pid):
            return pid
    raise TestFailure("no free pid found")


SKIP = 77  # ctest's SKIP_RETURN_CODE for every harness


class Skip(Exception):
    """The case cannot run on this machine (the reason is the message): exit SKIP."""


def case_main(name, doc, cases, make_ctx, allowed_left=lambda ctx: set()):
    """main() of a harness with one ctest per case: `SCRIPT [options] CASE`, `--list`.
    make_ctx(args, case) returns an object with .tmp, .t0 and .cleanup() (-> pids it had to
    kill). A case passes if it raises nothing and leaves no process behind (beyond
    allowed_left(ctx)). Returns the exit code."""
    if sys.argv[1:] == ["--list"]:  # for tests/CMakeLists.txt, without the other options
        print("\n".join(cases))
        return 0
    ap = argparse.ArgumentParser(description=doc.split("\n")[1])
    common_args(ap)
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("case", nargs="?")
    args = ap.parse_args()
    if args.list:
        print("\n".join(cases))
        return 0
    if args.case not in cases:
        ap.error("unknown case %r; known: %s" % (args.case, ", ".join(cases)))
    args.ckpt = os.path.abspath(args.ckpt)
    args.bindir = os.path.abspath(args.bindir)
    check_root_and_binary(args)
    set_subreaper()
    install_signal_handlers()
    ctx = make_ctx(args, args.case)
    log("%s %s: start (tmp dir %s)" % (name, args.case, ctx.tmp))
    ok, err, skipped = False, None, None
    try:
        cases[args.case](ctx)
        left = descendants() - allowed_left(ctx)
        if left:
            raise TestFailure("processes left behind: %s" % sorted(left))
        ok = True
    except Skip as e:
        skipped = str(e)
    except TestFailure as e:
        err = str(e)
    except BaseException as e:
        err = "harness error: %r" % (e,)
    killed = ctx.cleanup()
    if ok and killed:
        ok, err = False, "processes were left behind: %s" % killed
    if skipped is not None:
        remove_tree(ctx.tmp)
        log("SKIP %s %s: %s" % (name, args.case, skipped))
        return SKIP
    if ok:
        if not args.keep:
            remove_tree(ctx.tmp)
        log("PASS %s %s (%.2f s)" % (name, args.case, time.monotonic() - ctx.t0))
        return 0
    log("FAIL %s %s: %s" % (name, args.case, err))
    log("  kept for inspection: %s" % ctx.tmp)
    return 1


def common_args(parser):
    parser.add_argument("--ckpt", required=True, help="path of the ckpt binary")
    parser.add_argument("--bindir", required=True, help="directory with the zt_* programs and libzt_dl.so")
    parser.add_argument("--timeout", type=float, default=50.0, help="overall time limit in seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory even on success")


def check_root_and_binary(args):
    if not os.access(args.ckpt, os.X_OK):
        log("FAIL: ckpt binary %s is not executable" % args.ckpt)
        sys.exit(1)


def wait_restored(started, pid, before, timeout, skip=(), output_fn=None, tree=False):
    """Wait until a foreground `ckpt restore` (started with Ckpt.start) has brought
    up pid: it exists, is neither traced nor stopped, and its visible state
    equals `before` (normalized) on two polls in a row. Raises TestFailure with
    the last difference on timeout, or if ckpt restore exits first.
    tree=True: the same for the whole tree (visible_state(tree=True); no live process of
    the tree traced or stopped). Returns the visible state."""
    proc = started[0]
    end = time.monotonic() + timeout
    last = "process %d never appeared" % pid
    matched_once = False
    while True:
        if proc.poll() is not None:
            res = Ckpt.finish(started, 1)
            msg = "ckpt restore exited before the restored process was done: " + res.describe()
            if output_fn:
                msg += "\n  program output:\n" + indent(output_fn())
            raise TestFailure(msg)
        after = None
        if pid_exists(pid):
            bad = traced_or_stopped(pid)
            if bad:
                last = bad
            else:
                try:
                    after = visible_state(pid, tree)
                    problems = compare_state(before, after, True, skip)
                    if tree and not problems:
                        problems = tree_traced_or_stopped(after["tree"])
                except TestFailure as e:
                    problems = [str(e)]
                if not problems:
                    if matched_once:  # stable for two polls: restore is done
                        return after
                    matched_once = True
                    time.sleep(0.1)
                    continue
                last = "visible state of the restored process differs from the original:\n  " + \
                    state_problems_text(problems)
        matched_once = False
        if time.monotonic() >= end:
            raise TestFailure("restored process %d not right within %.0f s: %s" % (pid, timeout, last))
        time.sleep(0.05)


# --------------------------------------------------------------------------------------
# self-test of the comparison logic (run: tests/ztlib.py)


def _selftest():
    base = [
        "55b17109e000-55b1710a0000 r--p 00000000 fe:00 247134                     /usr/bin/cat",
        "55b1710a0000-55b1710a5000 r-xp 00002000 fe:00 247134                     /usr/bin/cat",
        "55b180f32000-55b180f53000 rw-p 00000000 00:00 0                          [heap]",
        "7f6a22781000-7f6a227a3000 rw-p 00000000 00:00 0 ",
        "7f6a227a3000-7f6a227fa000 rw-s 00000000 00:01 1234                       /dev/zero (deleted)",
        "7f6a229f3000-7f6a229f7000 r--p 00000000 00:00 0                          [vvar]",
    ]

    def st(maps, fds=None):
        return {"maps": maps, "fds": fds or {}}

    def same(a, b, restored=True):
        return compare_state(st(a), st(b), restored) == []

    def changed(i, old, new):
        m = list(base)
        assert old in m[i]
        m[i] = m[i].replace(old, new)
        return m

    split = base[:3] + ["7f6a22781000-7f6a22790000 rw-p 00000000 00:00 0 ",
                        "7f6a22790000-7f6a227a3000 rw-p 00000000 00:00 0 "] + base[4:]
    checks = [
        ("identical", same(base, list(base))),
        ("anon VMA split differently is equal after restore", same(base, split)),
        ("anon VMA split differently is a difference after a leave-running dump", not same(base, split, False)),
        ("shmem inode may change in a restore", same(base, changed(4, "1234", "9999"))),
        ("perms change detected", not same(base, changed(3, "rw-p", "r--p"))),
        ("lost [heap] label detected", not same(base, changed(2, "[heap]", ""))),
        ("file inode change detected", not same(base, changed(0, "247134", "247135"))),
        ("range change detected", not same(base, changed(5, "7f6a229f7000", "7f6a229f8000"))),
        ("shared/private change detected", not same(base, changed(4, "rw-s", "rw-p"))),
        ("non-contiguous file offsets not merged",
         not same(["1000-2000 r--p 00000000 fe:00 5 /x", "2000-3000 r--p 00005000 fe:00 5 /x"],
                  ["1000-3000 r--p 00000000 fe:00 5 /x"])),
        ("contiguous file pieces merged",
         same(["1000-2000 r--p 00000000 fe:00 5 /x", "2000-3000 r--p 00001000 fe:00 5 /x"],
              ["1000-3000 r--p 00000000 fe:00 5 /x"])),
        ("extra fd detected", compare_state(st(base, {1: ("/a", "01")}), st(base, {1: ("/a", "01"), 9: ("/b", "0")}),
                                            True) != []),
        ("fd flags change detected", compare_state(st(base, {1: ("/a", "01")}), st(base, {1: ("/a", "02")}),
                                                   True) != []),
        ("pipe inode may change in a restore", compare_state(st(base, {3: ("pipe:[1]", "0")}),
                                                             st(base, {3: ("pipe:[2]", "0")}), True) == []),
        ("pipe inode change detected without restore", compare_state(st(base, {3: ("pipe:[1]", "0")}),
                                                                     st(base, {3: ("pipe:[2]", "0")}), False) != []),
    ]
    th = {10: ("main", "0", "0", "0-1"), 11: ("worker", "4000", "200", "0")}

    def tw(tid, t):
        d = dict(th)
        d[tid] = t
        return d

    def sth(threads):
        return {"maps": base, "fds": {}, "threads": threads}

    checks += [
        ("identical threads", compare_state(sth(th), sth(dict(th)), True) == []),
        ("missing thread detected", compare_state(sth(th), sth({10: th[10]}), True) != []),
        ("extra thread detected", compare_state(sth(th), sth(tw(12, th[11])), True) != []),
        ("thread mask change detected",
         compare_state(sth(th), sth(tw(11, ("worker", "0", "200", "0"))), True) != []),
        ("thread pending change detected",
         compare_state(sth(th), sth(tw(11, ("worker", "4000", "0", "0"))), False) != []),
        ("thread name change detected",
         compare_state(sth(th), sth(tw(11, ("worker2", "4000", "200", "0"))), True) != []),
        ("thread affinity change detected",
         compare_state(sth(th), sth(tw(11, ("worker", "4000", "200", "0-1"))), True) != []),
    ]
    vf = [(0x1000, 0x3000, "rd wr mr mw me ac"), (0x3000, 0x5000, "rd wr mr mw me nr")]

    def svf(entries):
        return {"maps": base, "fds": {}, "vmflags": entries}

    checks += [
        ("identical VmFlags", compare_state(svf(vf), svf(list(vf)), True) == []),
        ("VMA with the same VmFlags split differently is equal",
         compare_state(svf(vf), svf([(0x1000, 0x2000, vf[0][2]), (0x2000, 0x3000, vf[0][2]), vf[1]]), True) == []),
        ("lost VmFlag detected", compare_state(svf(vf), svf([vf[0], (0x3000, 0x5000, "rd wr mr mw me ac")]),
                                               True) != []),
        ("VmFlags boundary change detected",
         compare_state(svf(vf), svf([(0x1000, 0x4000, vf[0][2]), (0x4000, 0x5000, vf[1][2])]), True) != []),
    ]
    kid = {"ppid": 10, "pgrp": 10, "session": 10, "comm": "kid", "zombie": False, "exit_code": None,
           "maps": list(base), "fds": {3: ("pipe:[77]", "01")}, "SigBlk": "0", "SigIgn": "0", "SigCgt": "4000",
           "SigPnd": "0", "ShdPnd": "0", "Umask": "0022"}
    zombie = {"ppid": 10, "pgrp": 10, "session": 10, "comm": "z", "zombie": True, "exit_code": 42 << 8}

    def stree(tree):
        return {"maps": base, "fds": {}, "tree": tree}

    def kw(**kv):
        d = dict(kid)
        d.update(kv)
        return d

    tr = {11: kid, 12: zombie}
    checks += [
        ("identical trees", compare_state(stree(tr), stree(dict(tr)), True) == []),
        ("no tree in one snapshot: not compared", compare_state(stree(tr), {"maps": base, "fds": {}}, True) == []),
        ("missing tree process detected", compare_state(stree(tr), stree({11: kid}), True) != []),
        ("extra tree process detected", compare_state(stree(tr), stree({11: kid, 12: zombie, 13: kid}), True) != []),
        ("tree ppid change detected", compare_state(stree(tr), stree({11: kw(ppid=1), 12: zombie}), True) != []),
        ("tree pgrp change detected", compare_state(stree(tr), stree({11: kw(pgrp=11), 12: zombie}), True) != []),
        ("tree session change detected",
         compare_state(stree(tr), stree({11: kw(session=11), 12: zombie}), True) != []),
        ("zombie that came back alive detected",
         compare_state(stree(tr), stree({11: kid, 12: kw(comm="z")}), True) != []),
        ("zombie exit status change detected",
         compare_state(stree(tr), stree({11: kid, 12: dict(zombie, exit_code=0)}), True) != []),
        ("tree maps change detected",
         compare_state(stree(tr), stree({11: kw(maps=changed(3, "rw-p", "r--p")), 12: zombie}), True) != []),
        ("tree maps split differently is equal after restore",
         compare_state(stree(tr), stree({11: kw(maps=split), 12: zombie}), True) == []),
        ("tree maps split differently is a difference after a leave-running dump",
         compare_state(stree(tr), stree({11: kw(maps=split), 12: zombie}), False) != []),
        ("tree pipe inode may change in a restore",
         compare_state(stree(tr), stree({11: kw(fds={3: ("pipe:[78]", "01")}), 12: zombie}), True) == []),
        ("tree fd flags change detected",
         compare_state(stree(tr), stree({11: kw(fds={3: ("pipe:[77]", "04001")}), 12: zombie}), True) != []),
        ("tree signal state change detected",
         compare_state(stree(tr), stree({11: kw(SigCgt="0"), 12: zombie}), True) != []),
        ("tree not compared when skipped",
         compare_state(stree(tr), stree({11: kid}), True, skip=("tree",)) == []),
    ]
    region = "7f6a22000000-7f6a220b2000 rwxs 00000000 00:01 4242                       /dev/zero (deleted)"

    def dropped(tb, ta):
        try:
            return len(drop_parasite_regions(stree(tb), stree(ta)))
        except TestFailure:
            return -1

    checks += [
        ("parasite region in a tree process dropped",
         dropped(tr, {11: kw(maps=base + [region]), 12: zombie}) == 1),
        ("parasite region dropped in the program and a tree process",
         len(drop_parasite_regions(stree(tr), {"maps": base + [region], "fds": {},
                                               "tree": {11: kw(maps=base + [region]), 12: zombie}})) == 2),
        ("other maps change in a tree process not taken for a parasite region",
         dropped(tr, {11: kw(maps=changed(3, "rw-p", "r--p") + [region]), 12: zombie}) == -1),
        ("two regions in one tree process not taken for a parasite region",
         dropped(tr, {11: kw(maps=base + [region, region.replace("7f6a22", "7f6a23")]), 12: zombie}) == -1),
    ]
    bad = [name for name, ok in checks if not ok]
    for name, ok in checks:
        print("%s %s" % ("ok  " if ok else "FAIL", name))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(_selftest())
