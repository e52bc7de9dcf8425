// zt_echo_seq: a filter, for the tests of pipes to outside the dumped tree
// (tests/external_pipes.py). Not a zdtm program: it reads lines from stdin and writes each
// back as "K LINE", K counting the lines handled since it started, so that the harness can
// see that no line was lost, doubled or reordered across a dump and a restore, and that the
// count (the program's own state) went on. At end of input it writes "EOF K" and exits 0.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int write_all(const char* p, size_t n) {
    while (n > 0) {
        ssize_t k = write(1, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int main(void) {
    char in[4096], line[256], out[300];
    size_t have = 0;
    unsigned long count = 0;
    for (;;) {
        ssize_t n = read(0, in + have, sizeof in - have);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            perror("zt_echo_seq: read");
            return 1;
        }
        if (n == 0) break;
        have += (size_t)n;
        char* start = in;
        char* nl;
        while ((nl = memchr(start, '\n', have - (size_t)(start - in))) != NULL) {
            size_t len = (size_t)(nl - start);
            if (len >= sizeof line) len = sizeof line - 1;
            memcpy(line, start, len);
            line[len] = 0;
            int m = snprintf(out, sizeof out, "%lu %s\n", ++count, line);
            if (write_all(out, (size_t)m) != 0) {
                perror("zt_echo_seq: write");
                return 1;
            }
            start = nl + 1;
        }
        have -= (size_t)(start - in);
        memmove(in, start, have);
        if (have == sizeof in) {
            fprintf(stderr, "zt_echo_seq: line too long\n");
            return 1;
        }
    }
    int m = snprintf(out, sizeof out, "EOF %lu\n", count);
    return write_all(out, (size_t)m) == 0 ? 0 : 1;
}
