"""Helpers shared by the tools/bench_*.py scripts."""
import ctypes, os, subprocess, sys, time


def become_subreaper():
    """Restored processes are reparented to us: make that so, and reap them."""
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def stats(text):
    """key=value lines from `ckpt ... --print-stats`."""
    return {k: float(v) for k, v in (l.split("=", 1) for l in text.split() if "=" in l)}


def start_target(argv, ready):
    """Starts a benchmark target that creates `ready` (a file: ckpt restores no pipes yet)."""
    proc = subprocess.Popen(argv + [ready], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL,
                            close_fds=True, start_new_session=True)
    while not os.path.exists(ready):
        if proc.poll() is not None:
            sys.exit(f"{argv[0]} exited with {proc.returncode}")
        time.sleep(0.01)
    os.unlink(ready)
    return proc


def wait_gone(pid):
    """Waits until pid is reaped (a restored process is not our child until reparented)."""
    while os.path.exists(f"/proc/{pid}"):
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.005)
