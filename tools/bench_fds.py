#!/usr/bin/env python3
"""A process holding many descriptors of mixed kinds (eventfds, timerfds, one epoll watching
half of them): dump and restore time. Run as root after tools/build.sh:
tools/bench_fds.py [--fds 10000] [--runs 3]. Prints the median of --runs runs and checks that
the restored process has the same descriptors and epoll targets."""
import argparse, os, shutil, signal, statistics, subprocess, sys, tempfile, time

from benchlib import become_subreaper, start_target, stats, wait_gone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fd_summary(pid):
    """(number of fds, number of epoll target lines) of pid."""
    fds = os.listdir(f"/proc/{pid}/fd")
    targets = 0
    for fd in fds:
        if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[eventpoll]":
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                targets += sum(1 for l in f if l.startswith("tfd:"))
    return len(fds), targets


def one_run(a, workdir):
    img = tempfile.mkdtemp(prefix="bench-fds-", dir=workdir)
    proc = start_target([a.prog, str(a.fds)], img + ".ready")
    before = fd_summary(proc.pid)
    t = time.monotonic()
    res = subprocess.run([a.ckpt, "dump", "--pid", str(proc.pid), "-o", img, "--print-stats"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        os.killpg(proc.pid, signal.SIGKILL)
        sys.exit("dump failed: " + res.stderr.strip())
    d = stats(res.stdout)
    dump_s = time.monotonic() - t
    proc.wait()
    t = time.monotonic()
    res = subprocess.run([a.ckpt, "restore", "-D", img, "--detach", "--print-stats"], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("restore failed: " + res.stderr.strip())
    r = stats(res.stdout)
    restore_s = time.monotonic() - t
    after = fd_summary(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    wait_gone(proc.pid)
    shutil.rmtree(img)
    if after != before:
        sys.exit(f"restored process has {after[0]} fds and {after[1]} epoll targets, expected {before}")
    return dump_s, d["frozen_ms"] / 1000, restore_s, r["restore_ms"] / 1000, before[0], before[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "build", "ckpt"))
    ap.add_argument("--prog", default=os.path.join(ROOT, "build", "ckpt-bench-fds"))
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fds", type=int, default=10000)
    a = ap.parse_args()
    become_subreaper()
    runs = [one_run(a, a.dir) for _ in range(a.runs)]
    m = [statistics.median(x) for x in zip(*runs)]
    print(f"{m[4]:.0f} fds ({m[5]:.0f} epoll targets): dump {m[0]:.3f} s (frozen {m[1]:.3f} s), "
          f"restore {m[2]:.3f} s (of which ckpt restore {m[3]:.3f} s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
