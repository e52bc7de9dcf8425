#!/usr/bin/env python3
"""Dump/restore speed on memory: 1 GiB and 4 GiB of random touched memory, 1 GiB of touched
zero pages. For each: dump time, time the target was frozen, image size, restore time, GB/s.
Run as root after tools/build.sh:  tools/bench_memory.py [--ckpt build/ckpt] [--dir /tmp]
Page cache is dropped before each restore ("cold") and not dropped for a second one ("warm").
"""
import argparse, os, shutil, signal, subprocess, sys, tempfile, time

from benchlib import become_subreaper, start_target, stats, wait_gone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_case(ckpt, hog, workdir, mib, kind):
    img = tempfile.mkdtemp(prefix=f"bench-{mib}-{kind}-", dir=workdir)
    proc = start_target([hog, str(mib), kind], img + ".ready")
    t = time.monotonic()
    res = subprocess.run([ckpt, "dump", "--pid", str(proc.pid), "-o", img, "--print-stats"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        proc.kill()
        sys.exit(f"dump failed: {res.stderr.strip()}")
    out = res.stdout
    dump_wall = time.monotonic() - t
    proc.wait()
    d = stats(out)
    size = sum(os.path.getsize(os.path.join(img, f)) for f in os.listdir(img))
    results = {}
    for label, drop in (("cold", True), ("warm", False)):
        if drop:
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        t = time.monotonic()
        r = subprocess.run([ckpt, "restore", "-D", img, "--detach", "--print-stats"],
                           check=True, capture_output=True, text=True).stdout
        results[label] = (time.monotonic() - t, stats(r))
        os.kill(proc.pid, signal.SIGKILL)
        wait_gone(proc.pid)
    shutil.rmtree(img)
    gb = mib / 1024 * 1.073741824
    print(f"{mib:>5} MiB {kind:<6}  dump {dump_wall:6.3f} s ({gb / dump_wall:5.2f} GB/s)  "
          f"frozen {d['frozen_ms'] / 1000:6.3f} s  image {size / 2**20:8.1f} MiB  "
          f"restore cold {results['cold'][0]:6.3f} s ({gb / results['cold'][0]:5.2f} GB/s)  "
          f"warm {results['warm'][0]:6.3f} s ({gb / results['warm'][0]:5.2f} GB/s)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "build", "ckpt"))
    ap.add_argument("--hog", default=os.path.join(ROOT, "build", "ckpt-bench-memhog"))
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--cases", default="1024:random,4096:random,1024:zero")
    a = ap.parse_args()
    become_subreaper()
    for case in a.cases.split(","):
        mib, kind = case.split(":")
        run_case(a.ckpt, a.hog, a.dir, int(mib), kind)


if __name__ == "__main__":
    sys.exit(main())
