/*
 * Recall corpus program: dlopen()s each argument in order with RTLD_NOW (from a second thread when
 * the first argument is --thread), prints "<arg> ok|NULL" per call, writes its ground truth and exits.
 * A failed dlopen (a missing file) is not an error: the program still writes its truth.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "truth.h"

struct job {
  int argc;
  char **argv;
};

static void *open_all(void *arg) {
  struct job *j = arg;
  for (int i = 0; i < j->argc; i++) {
    void *h = dlopen(j->argv[i], RTLD_NOW);
    printf("%s %s\n", j->argv[i], h ? "ok" : "NULL");
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threaded = argc > 1 && strcmp(argv[1], "--thread") == 0;
  struct job j = {argc - 1 - threaded, argv + 1 + threaded};
  if (threaded) {
    pthread_t t;
    if (pthread_create(&t, NULL, open_all, &j) != 0) return 3;
    pthread_join(t, NULL);
  } else {
    open_all(&j);
  }
  fflush(stdout);
  return soload_write_truth() == 0 ? 0 : 2;
}
