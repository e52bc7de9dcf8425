/* Benchmark target: holds SIZE_MIB of touched memory (random bytes or zeros), then sleeps.
 * usage: memhog SIZE_MIB random|zero READY_FILE — creates READY_FILE when the memory is in place
 * (a file, not a pipe: ckpt does not restore pipes yet). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char** argv) {
    if (argc != 4) return 2;
    size_t len = strtoull(argv[1], NULL, 10) << 20;
    int random = strcmp(argv[2], "random") == 0;
    uint64_t* p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 1;
    madvise(p, len, 23 /* MADV_POPULATE_WRITE: fast setup */);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < len / 8; ++i) {
        if (random) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            p[i] = x;
        } else {
            p[i] = 0;
        }
    }
    FILE* f = fopen(argv[3], "w");
    if (!f) return 1;
    fclose(f);
    for (;;) pause();
}
