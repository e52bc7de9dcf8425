#!/usr/bin/env python3
"""Dump and restore time, and how long the target is frozen, for 10, 100 and 1000 threads.
Run as root after tools/build.sh:  tools/bench_threads.py [--ckpt build/ckpt] [--runs 3]
Prints the median of --runs runs for each thread count."""
import argparse, os, shutil, signal, statistics, subprocess, sys, tempfile, time

from benchlib import become_subreaper, start_target, stats, wait_gone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_run(ckpt, prog, n, workdir):
    img = tempfile.mkdtemp(prefix=f"bench-threads-{n}-", dir=workdir)
    proc = start_target([prog, str(n)], img + ".ready")
    t = time.monotonic()
    d = stats(subprocess.run([ckpt, "dump", "--pid", str(proc.pid), "-o", img, "--print-stats"],
                             check=True, capture_output=True, text=True).stdout)
    dump_s = time.monotonic() - t
    proc.wait()
    t = time.monotonic()
    subprocess.run([ckpt, "restore", "-D", img, "--detach"], check=True, capture_output=True)
    restore_s = time.monotonic() - t
    alive = len(os.listdir(f"/proc/{proc.pid}/task"))
    if alive != n:
        sys.exit(f"restored {alive} threads, expected {n}")
    os.kill(proc.pid, signal.SIGKILL)
    wait_gone(proc.pid)
    shutil.rmtree(img)
    return dump_s, d["frozen_ms"] / 1000, restore_s


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "build", "ckpt"))
    ap.add_argument("--prog", default=os.path.join(ROOT, "build", "ckpt-bench-threads"))
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--counts", default="10,100,1000")
    a = ap.parse_args()
    become_subreaper()
    for n in map(int, a.counts.split(",")):
        runs = [one_run(a.ckpt, a.prog, n, a.dir) for _ in range(a.runs)]
        med = [statistics.median(x) for x in zip(*runs)]
        print(f"{n:>5} threads  dump {med[0]:6.3f} s  frozen {med[1]:6.3f} s  restore {med[2]:6.3f} s",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
