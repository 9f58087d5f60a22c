/*
 * Timing driver of the musl-dlopen workload, itself a musl-gcc program (dlopen must be musl's):
 * dlopen()+dlclose() of N distinct library files, PATTERN formatted with 0 .. N-1, printing the wall
 * time of the loop in milliseconds.
 *
 * musl's dlclose never unloads, and its dlopen finds an already loaded object by (device, inode),
 * so reopening one file (or a hard link to it) would time a list search, not a load. Each
 * iteration therefore opens a file of its own (a copy: its own inode) and every dlopen maps a new
 * object, runs its constructor and notifies the debugger interface, which is what soload probes.
 * The constructor increments bench_musl_ctor_runs (exported with -rdynamic): it must equal N.
 *   usage: musl-dlopen N PATTERN      e.g. musl-dlopen 600 /tmp/x/libmdl%d.so
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int bench_musl_ctor_runs = 0;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s N PATTERN\n", argv[0]);
    return 2;
  }
  long n = strtol(argv[1], NULL, 10);
  /* The names are formatted before the clock starts: only dlopen and dlclose are timed. */
  char (*names)[4096] = malloc((size_t)n * sizeof *names);
  if (names == NULL) {
    perror("malloc");
    return 1;
  }
  for (long i = 0; i < n; i++) {
    if (snprintf(names[i], sizeof names[i], argv[2], (int)i) >= (int)sizeof names[i]) {
      fprintf(stderr, "library name too long\n");
      return 1;
    }
  }
  double t0 = now_ms();
  for (long i = 0; i < n; i++) {
    void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
      fprintf(stderr, "dlopen %s: %s\n", names[i], dlerror());
      return 1;
    }
    if (dlclose(h) != 0) {
      fprintf(stderr, "dlclose %s: %s\n", names[i], dlerror());
      return 1;
    }
  }
  double t1 = now_ms();
  if (bench_musl_ctor_runs != n) {
    fprintf(stderr, "library constructors ran %d times for %ld dlopens of distinct files: not every dlopen mapped a new object\n",
            bench_musl_ctor_runs, n);
    return 1;
  }
  printf("%.3f\n", t1 - t0);
  return 0;
}
