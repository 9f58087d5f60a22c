/*
 * Sustained load generator: dlopen()s and dlclose()s the given libraries round-robin at RATE
 * loads/s for DURATION_S seconds, pinned to CPU (-1: not pinned). dlclose unloads a library that
 * nothing else references, so every successful dlopen maps the file anew: one load each.
 *
 * Pacing is on an absolute 1 ms grid (clock_nanosleep TIMER_ABSTIME): at each tick the loads due by
 * then are made, so the rate holds without drift, and a generator that cannot keep up falls behind
 * visibly (it never skips a load to look on schedule; "behind" is what it still owed at the end).
 *   usage: dlgen CPU RATE DURATION_S LIB...
 *   prints: loads <ok> failed <n> behind <n> elapsed <s> start <unix ns> end <unix ns>
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s CPU RATE DURATION_S LIB...\n", argv[0]);
    return 2;
  }
  int cpu = atoi(argv[1]);
  double rate = atof(argv[2]);
  double duration = atof(argv[3]);
  char **libs = argv + 4;
  int nlibs = argc - 4;
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
  }
  long long total = (long long)(rate * duration + 0.5);
  long long made = 0, ok = 0, failed = 0;
  long long wall0 = ns(CLOCK_REALTIME);
  long long t0 = ns(CLOCK_MONOTONIC);
  long long end = t0 + (long long)(duration * 1e9);
  struct timespec tick = {t0 / 1000000000LL, t0 % 1000000000LL};
  for (;;) {
    long long now = ns(CLOCK_MONOTONIC);
    if (now >= end) break;
    long long due = (long long)((now - t0) / 1e9 * rate) + 1;
    if (due > total) due = total;
    while (made < due) {
      void *h = dlopen(libs[made % nlibs], RTLD_NOW | RTLD_LOCAL);
      made++;
      if (h) {
        ok++;
        dlclose(h);
      } else {
        failed++;
      }
      if ((made & 63) == 0 && ns(CLOCK_MONOTONIC) >= end) break;
    }
    tick.tv_nsec += 1000000;
    if (tick.tv_nsec >= 1000000000L) {
      tick.tv_sec++;
      tick.tv_nsec -= 1000000000L;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL);
  }
  long long t1 = ns(CLOCK_MONOTONIC);
  printf("loads %lld failed %lld behind %lld elapsed %.6f start %lld end %lld\n", ok, failed, total - made, (t1 - t0) / 1e9, wall0,
         wall0 + (t1 - t0));
  return 0;
}
