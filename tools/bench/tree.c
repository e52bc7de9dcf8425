/* Benchmark target: a parent with PARENT_MIB of touched private memory forks NCHILD
 * children; each writes CHILD_MIB of memory of its own and keeps the parent's shared
 * copy-on-write (it only reads it). Creates READY_FILE when every child is in place, then
 * all sleep. usage: tree PARENT_MIB NCHILD CHILD_MIB READY_FILE */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t* touched(size_t len, uint64_t seed) {
    uint64_t* p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) exit(1);
    uint64_t x = seed;
    for (size_t i = 0; i < len / 8; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = x;
    }
    return p;
}

int main(int argc, char** argv) {
    if (argc != 5) return 2;
    size_t parent_len = strtoull(argv[1], NULL, 10) << 20, child_len = strtoull(argv[3], NULL, 10) << 20;
    int n = atoi(argv[2]);
    volatile uint64_t* shared = touched(parent_len, 0x9e3779b97f4a7c15ull);
    int ready[2];
    if (pipe(ready) != 0) return 1;
    for (int i = 0; i < n; ++i) {
        pid_t c = fork();
        if (c < 0) return 1;
        if (c == 0) {
            close(ready[0]);
            uint64_t sum = 0;
            for (size_t k = 0; k < parent_len / 8; k += 512) sum += shared[k];  // read only
            touched(child_len, 0x1234567ull + (uint64_t)i + sum);
            if (write(ready[1], "c", 1) != 1) _exit(1);
            close(ready[1]);
            for (;;) pause();
        }
    }
    close(ready[1]);
    char c;
    for (int i = 0; i < n; ++i)
        if (read(ready[0], &c, 1) != 1) return 1;
    close(ready[0]);
    FILE* f = fopen(argv[4], "w");
    if (!f) return 1;
    fclose(f);
    for (;;) pause();
}
