/* tree_exec_helper.c - the program zt_tree_exec runs in a forked child with execve().
 *
 * Usage: zt_tree_exec_helper hello world FD, with ZT_TREE_EXEC=42 in the environment.
 * It checks its arguments and environment, fills some memory, writes one byte to FD
 * (the parent's "exec done, set up") and closes it, then waits for SIGTERM (the handler of
 * zt.c, linked in). Then it checks that argv, the environment, its memory, its executable
 * and its parent are what they were, and exits 7. Never speaks the zdtm protocol: a
 * problem is a "# " line on fd 2 and another exit status.
 */
#define _GNU_SOURCE
#include "zt_tree.h"

#define MEM_LEN (32 * 1024)

static uint8_t mem[MEM_LEN];

static void check_args(int argc, char **argv, int code)
{
	const char *v = getenv("ZT_TREE_EXEC");

	if (argc != 4 || strcmp(argv[1], "hello") != 0 || strcmp(argv[2], "world") != 0)
		zt_child_fail(code, "argv is not 'hello world FD' (argc %d)", argc);
	if (!v || strcmp(v, "42") != 0)
		zt_child_fail(code + 1, "ZT_TREE_EXEC is %s, expected 42", v ? v : "unset");
}

int main(int argc, char **argv)
{
	char exe[4096];
	ssize_t n;
	pid_t parent = getppid();
	int fd;

	check_args(argc, argv, 20);
	fd = atoi(argv[3]);
	zt_pat_fill(mem, MEM_LEN, 77, 0);
	if (zt_write_all(fd, "h", 1) != 0)
		zt_child_fail(22, "write(%d): %s", fd, strerror(errno));
	close(fd);

	zt_wait_stop();

	check_args(argc, argv, 23);
	if (zt_pat_check(mem, MEM_LEN, 77, 0) >= 0)
		zt_child_fail(25, "its memory changed");
	if (getppid() != parent)
		zt_child_fail(26, "getppid() is %d, was %d", (int)getppid(), (int)parent);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		zt_child_fail(27, "readlink /proc/self/exe: %s", strerror(errno));
	exe[n] = '\0';
	if (n < 20 || strcmp(exe + n - 20, "/zt_tree_exec_helper") != 0)
		zt_child_fail(28, "its executable is %s", exe);
	_exit(7);
}
