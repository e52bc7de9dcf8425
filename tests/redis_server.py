#!/usr/bin/env python3
"""redis_server.py - redis-server with keys, dumped and restored, still answering.

redis-server runs in a work directory without persistence (--save "", --appendonly no) on
a TCP port on 127.0.0.1 and a unix socket (redis.sock): its event loop (epoll), a pipe or
eventfd to its background threads, listening sockets. The harness stores 1000 keys with
redis-cli (each connection is closed again before the dump), then:

  restore        dumps (which kills redis), restores it detached: every key must read back
                 through the TCP port and through the unix socket, a new key can be set,
                 and SHUTDOWN NOSAVE ends it;
  leave-running  dumps with --leave-running: the same checks on the original.
"""

import os
import shutil
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztlib  # noqa: E402
from ztlib import Skip, TestFailure, log  # noqa: E402

CMD_TIMEOUT = 60
NKEYS = 1000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Ctx:
    def __init__(self, args, name):
        self.args = args
        self.deadline = ztlib.Deadline(args.timeout)
        self.tmp = ztlib.make_tmpdir("redis-" + name)
        self.work = os.path.join(self.tmp, "work")
        os.mkdir(self.work)
        self.img = os.path.join(self.tmp, "img")
        self.ckpt = ztlib.Ckpt(args.ckpt, self.tmp)
        self.redis = None
        self.port = free_port()
        self.sock = os.path.join(self.work, "redis.sock")
        self.t0 = time.monotonic()

    def step(self, msg):
        log("  [%6.2f s] %s" % (time.monotonic() - self.t0, msg))

    def cli(self, *args, unix=False):
        where = ["-s", self.sock] if unix else ["-h", "127.0.0.1", "-p", str(self.port)]
        res = subprocess.run(["redis-cli"] + where + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=self.deadline.timeout(20))
        return res.returncode, res.stdout.decode(errors="replace").strip()

    def cleanup(self):
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait()
        return ztlib.kill_descendants("redis cleanup")


def start(ctx):
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise Skip("redis-server is not installed")
    log_fd = os.open(os.path.join(ctx.tmp, "redis.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    ctx.redis = subprocess.Popen(["redis-server", "--port", str(ctx.port), "--bind", "127.0.0.1", "--unixsocket",
                                  ctx.sock, "--save", "", "--appendonly", "no", "--dir", ctx.work],
                                 cwd=ctx.work, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, close_fds=True,
                                 start_new_session=True)
    os.close(log_fd)
    end = time.monotonic() + ctx.deadline.timeout(20)
    while ctx.cli("PING") != (0, "PONG"):
        if time.monotonic() > end or ctx.redis.poll() is not None:
            raise TestFailure("redis-server did not answer PING; its log:\n" +
                              ztlib.indent(ztlib.read_text(os.path.join(ctx.tmp, "redis.log"))))
        time.sleep(0.05)
    cmds = "".join("SET key:%d value-%d\n" % (i, i * 7) for i in range(NKEYS))
    res = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(ctx.port)], input=cmds.encode(),
                         stdout=subprocess.DEVNULL, timeout=ctx.deadline.timeout(20))
    if res.returncode != 0 or ctx.cli("DBSIZE") != (0, str(NKEYS)):
        raise TestFailure("could not store %d keys: DBSIZE says %s" % (NKEYS, ctx.cli("DBSIZE")))
    time.sleep(0.3)  # the clients' connections are closed on both sides
    ctx.step("redis-server (pid %d) holds %d keys on port %d and %s" % (ctx.redis.pid, NKEYS, ctx.port, ctx.sock))


def check(ctx):
    for unix in (False, True):
        rc, out = ctx.cli("DBSIZE", unix=unix)
        if (rc, out) != (0, str(NKEYS)):
            raise TestFailure("DBSIZE through the %s gives %r" % ("unix socket" if unix else "TCP port", out))
    for i in (0, 1, NKEYS // 2, NKEYS - 1):
        if ctx.cli("GET", "key:%d" % i) != (0, "value-%d" % (i * 7)):
            raise TestFailure("key:%d reads %r" % (i, ctx.cli("GET", "key:%d" % i)))
    if ctx.cli("SET", "after", "yes") != (0, "OK") or ctx.cli("GET", "after", unix=True) != (0, "yes"):
        raise TestFailure("a new key cannot be stored and read back")
    ctx.step("all keys read back through the TCP port and the unix socket; a new key works")


def case_restore(ctx):
    start(ctx)
    pid = ctx.redis.pid
    res = ctx.ckpt.run(["dump", "--pid", pid, "-o", ctx.img], "dump", ctx.deadline.timeout(CMD_TIMEOUT))
    if res.timed_out or res.rc != 0:
        raise TestFailure("dump failed: " + res.describe())
    ctx.redis.wait(ctx.deadline.timeout(10))
    ztlib.wait_gone([pid], ctx.deadline.timeout(10))
    res = ctx.ckpt.run(["restore", "-D", ctx.img, "-d"], "restore", ctx.deadline.timeout(CMD_TIMEOUT))
    if res.timed_out or res.rc != 0:
        raise TestFailure("restore failed: " + res.describe())
    ctx.step("dumped, killed and restored redis-server (pid %d)" % pid)
    try:
        check(ctx)
    finally:
        ctx.cli("SHUTDOWN", "NOSAVE")
        end = time.monotonic() + 10
        while ztlib.pid_exists(pid) and time.monotonic() < end:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
    if ztlib.pid_exists(pid):
        raise TestFailure("the restored redis-server did not exit on SHUTDOWN NOSAVE")


def case_leave_running(ctx):
    start(ctx)
    res = ctx.ckpt.run(["dump", "--pid", ctx.redis.pid, "-o", ctx.img, "--leave-running"], "dump",
                       ctx.deadline.timeout(CMD_TIMEOUT))
    if res.timed_out or res.rc != 0:
        raise TestFailure("dump failed: " + res.describe())
    check(ctx)
    ctx.cli("SHUTDOWN", "NOSAVE")
    ctx.redis.wait(ctx.deadline.timeout(10))


CASES = {"restore": case_restore, "leave-running": case_leave_running}

if __name__ == "__main__":
    sys.exit(ztlib.case_main("redis_server", __doc__, CASES, Ctx))
