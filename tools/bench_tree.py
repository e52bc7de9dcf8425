#!/usr/bin/env python3
"""A tree of processes forked from a parent with touched private memory, each child writing
memory of its own: dump and restore time, image size, and the tree's total PSS before the
dump and after the restore (PSS shows whether copy-on-write sharing survived).
Run as root after tools/build.sh:  tools/bench_tree.py [--children 100] [--parent-mib 256]
[--child-mib 1] [--runs 3]. Prints the median of --runs runs."""
import argparse, os, shutil, signal, statistics, subprocess, sys, tempfile, time

from benchlib import become_subreaper, start_target, stats, wait_gone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tree_pids(root):
    pids, todo = [], [root]
    while todo:
        p = todo.pop()
        pids.append(p)
        for t in os.listdir(f"/proc/{p}/task"):
            with open(f"/proc/{p}/task/{t}/children") as f:
                todo.extend(int(c) for c in f.read().split())
    return pids


def total_pss_mib(root):
    kb = 0
    for p in tree_pids(root):
        with open(f"/proc/{p}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    kb += int(line.split()[1])
    return kb / 1024


def image_mib(img):
    return sum(os.path.getsize(os.path.join(img, f)) for f in os.listdir(img)) / (1 << 20)


def one_run(a, workdir):
    img = tempfile.mkdtemp(prefix="bench-tree-", dir=workdir)
    proc = start_target([a.prog, str(a.parent_mib), str(a.children), str(a.child_mib)], img + ".ready")
    pids = tree_pids(proc.pid)
    n = len(pids)
    pss_before = total_pss_mib(proc.pid)
    t = time.monotonic()
    res = subprocess.run([a.ckpt, "dump", "--pid", str(proc.pid), "-o", img, "--print-stats"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        os.killpg(proc.pid, signal.SIGKILL)
        sys.exit("dump failed: " + res.stderr.strip())
    d = stats(res.stdout)
    dump_s = time.monotonic() - t
    proc.wait()
    for p in pids:  # the killed tree's orphans came to us (a subreaper): reap them
        wait_gone(p)
    t = time.monotonic()
    res = subprocess.run([a.ckpt, "restore", "-D", img, "--detach", "--print-stats"], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("restore failed: " + res.stderr.strip())
    r = stats(res.stdout)
    restore_s = time.monotonic() - t
    if len(tree_pids(proc.pid)) != n:
        sys.exit(f"restored {len(tree_pids(proc.pid))} processes, expected {n}")
    pss_after = total_pss_mib(proc.pid)
    size = image_mib(img)
    os.killpg(proc.pid, signal.SIGKILL)
    wait_gone(proc.pid)
    shutil.rmtree(img)
    # restore_s includes waiting for pid 1 to reap the killed tree's orphans; restore_ms not
    return dump_s, d["frozen_ms"] / 1000, restore_s, r["restore_ms"] / 1000, size, pss_before, pss_after


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "build", "ckpt"))
    ap.add_argument("--prog", default=os.path.join(ROOT, "build", "ckpt-bench-tree"))
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--children", type=int, default=100)
    ap.add_argument("--parent-mib", type=int, default=256)
    ap.add_argument("--child-mib", type=int, default=1)
    a = ap.parse_args()
    become_subreaper()
    runs = [one_run(a, a.dir) for _ in range(a.runs)]
    m = [statistics.median(x) for x in zip(*runs)]
    print(f"{a.children} children of a {a.parent_mib} MiB parent, {a.child_mib} MiB each: dump {m[0]:.3f} s "
          f"(frozen {m[1]:.3f} s), restore {m[2]:.3f} s (of which ckpt restore {m[3]:.3f} s), image {m[4]:.0f} MiB, "
          f"PSS {m[5]:.0f} MiB before, {m[6]:.0f} MiB after", flush=True)


if __name__ == "__main__":
    sys.exit(main())
