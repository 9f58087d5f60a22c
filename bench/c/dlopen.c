/*
 * Timing driver for the dlopen workload: dlopen()+dlclose() of one library argv[1] times, printing
 * the wall time of the loop in milliseconds.
 *
 * The point is that every iteration really maps the library again (the expensive path that runs
 * ld.so's loader and its _dl_debug_state notifications), not a reference-count bump on an object
 * that stays loaded. The library's constructor increments bench_ctor_runs, which lives here and is
 * exported with -rdynamic: a constructor runs once per mapping, so the count must equal N. After the
 * loop, RTLD_NOLOAD confirms the last dlclose left nothing mapped.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int bench_ctor_runs = 0;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s N LIBRARY\n", argv[0]);
    return 2;
  }
  long n = strtol(argv[1], NULL, 10);
  const char *lib = argv[2];
  double t0 = now_ms();
  for (long i = 0; i < n; i++) {
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
      fprintf(stderr, "dlopen: %s\n", dlerror());
      return 1;
    }
    if (dlclose(h) != 0) {
      fprintf(stderr, "dlclose: %s\n", dlerror());
      return 1;
    }
  }
  double t1 = now_ms();
  if (bench_ctor_runs != n) {
    fprintf(stderr, "library constructor ran %d times for %ld dlopens: dlclose did not unload it\n", bench_ctor_runs, n);
    return 1;
  }
  if (dlopen(lib, RTLD_NOW | RTLD_NOLOAD) != NULL) {
    fprintf(stderr, "%s still loaded after dlclose\n", lib);
    return 1;
  }
  printf("%.3f\n", t1 - t0);
  return 0;
}
