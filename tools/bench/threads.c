/* Benchmark target: N threads parked in pause(). usage: threads N READY_FILE */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void* park(void* arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    int n = atoi(argv[1]);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 64 * 1024);
    for (int i = 1; i < n; ++i) {  /* the main thread is one of the N */
        pthread_t t;
        if (pthread_create(&t, &a, park, NULL) != 0) return 1;
    }
    FILE* f = fopen(argv[2], "w");
    if (!f) return 1;
    fclose(f);
    for (;;) pause();
}
