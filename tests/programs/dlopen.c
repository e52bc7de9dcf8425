/* dlopen.c - dynamically loaded libraries.
 *
 * argv[1] (optional): path of libzt_dl.so; default: next to /proc/self/exe.
 * Before READY: dlopen libzt_dl.so, call zt_dl_bump() five times (its static
 * counter becomes 5); dlopen("libm.so.6") and call cos().
 * After SIGTERM: call zt_dl_bump through the saved pointer (counter continues
 * at 6) and through a fresh dlsym (7; same address as before); the library's
 * data is intact; dlopen(RTLD_NOLOAD) still finds both libraries; cos() works
 * through saved and fresh pointers; a library not loaded before can be dlopen()ed.
 */
#define _GNU_SOURCE
#include "zt.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef int (*bump_fn)(int);
typedef int (*get_fn)(void);
typedef double (*cos_fn)(double);

/* no libm at link time: libm must come from dlopen() alone */
static double dabs(double x)
{
	return x < 0 ? -x : x;
}

static const double COS_HALF = 0.87758256189037276; /* cos(0.5) */

int main(int argc, char **argv)
{
	char path[PATH_MAX];
	void *h, *hm, *h2;
	bump_fn bump;
	get_fn table_sum;
	cos_fn mycos;
	int r = 0, sum_before;
	volatile double half = 0.5;

	if (argc > 1) {
		snprintf(path, sizeof(path), "%s", argv[1]);
	} else {
		ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
		if (n < 0)
			zt_fail("readlink(/proc/self/exe): %s", strerror(errno));
		path[n] = '\0';
		char *slash = strrchr(path, '/');
		if (!slash)
			zt_fail("odd /proc/self/exe: %s", path);
		snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path), "libzt_dl.so");
	}

	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		zt_fail("dlopen(%s): %s", path, dlerror());
	bump = (bump_fn)dlsym(h, "zt_dl_bump");
	table_sum = (get_fn)dlsym(h, "zt_dl_table_sum");
	if (!bump || !table_sum)
		zt_fail("dlsym: %s", dlerror());
	for (int i = 0; i < 5; i++)
		r = bump(1);
	if (r != 5)
		zt_fail("zt_dl_bump returned %d, expected 5", r);
	sum_before = table_sum();

	if (dlopen("libm.so.6", RTLD_NOW | RTLD_NOLOAD) != NULL)
		zt_fail("libm.so.6 is already loaded before dlopen(): the test would not test dlopen");
	hm = dlopen("libm.so.6", RTLD_NOW);
	if (!hm)
		zt_fail("dlopen(libm.so.6): %s", dlerror());
	mycos = (cos_fn)dlsym(hm, "cos");
	if (!mycos)
		zt_fail("dlsym(cos): %s", dlerror());
	if (dabs(mycos(half) - COS_HALF) > 1e-15)
		zt_fail("cos(0.5) = %.17g before the dump", mycos(half));

	zt_ready();
	zt_wait_stop();

	r = bump(1);
	if (r != 6)
		zt_fail("zt_dl_bump via saved pointer returned %d, expected 6", r);
	bump_fn fresh = (bump_fn)dlsym(h, "zt_dl_bump");
	if (fresh != bump)
		zt_fail("fresh dlsym(zt_dl_bump) = %p, saved %p", (void *)fresh, (void *)bump);
	r = fresh(1);
	if (r != 7)
		zt_fail("zt_dl_bump via fresh dlsym returned %d, expected 7", r);
	get_fn get = (get_fn)dlsym(h, "zt_dl_get");
	if (!get || get() != 7)
		zt_fail("zt_dl_get: %d", get ? get() : -1);
	if (table_sum() != sum_before + 2)
		zt_fail("library data: table sum %d, expected %d", table_sum(), sum_before + 2);

	h2 = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (h2 != h)
		zt_fail("dlopen(RTLD_NOLOAD) of %s gave %p, expected %p", path, h2, h);
	dlclose(h2);
	h2 = dlopen("libm.so.6", RTLD_NOW | RTLD_NOLOAD);
	if (h2 != hm)
		zt_fail("libm.so.6 no longer loaded (%p vs %p)", h2, hm);
	dlclose(h2);

	if (dabs(mycos(half) - COS_HALF) > 1e-15)
		zt_fail("cos(0.5) = %.17g via saved pointer", mycos(half));
	cos_fn cos2 = (cos_fn)dlsym(hm, "cos");
	if (cos2 != mycos || dabs(cos2(half) - COS_HALF) > 1e-15)
		zt_fail("fresh dlsym(cos) %p vs %p", (void *)cos2, (void *)mycos);

	Dl_info info;
	if (!dladdr((void *)bump, &info) || !info.dli_fname || strcmp(info.dli_fname, path) != 0)
		zt_fail("dladdr(zt_dl_bump) does not name %s", path);

	/* the dynamic loader still works for new libraries */
	void *hr = dlopen("libresolv.so.2", RTLD_NOW);
	if (!hr)
		zt_fail("dlopen(libresolv.so.2) after the dump: %s", dlerror());
	dlclose(hr);
	zt_pass();
}
