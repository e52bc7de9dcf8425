/* The demo's program: counts, one number per line, a few times a second. */
#include <stdio.h>
#include <time.h>

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (unsigned long n = 1;; ++n) {
        printf("count %lu\n", n);
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
