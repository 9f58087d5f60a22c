/*
 * Recall corpus program: dlopen()s each argument in order with RTLD_NOW, prints "<arg> ok|NULL" per
 * call, writes its ground truth and exits. Options, before the paths:
 *   --thread  the dlopen() calls run on a second thread
 *   --unlink  each successfully opened file is unlink()ed right after its dlopen(), so the truth
 *             (written while it is still mapped) shows "<path> (deleted)"
 * A failed dlopen (a missing file) is not an error: the program still writes its truth.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "truth.h"

struct job {
  int argc;
  char **argv;
  int unlink_after;
};

static void *open_all(void *arg) {
  struct job *j = arg;
  for (int i = 0; i < j->argc; i++) {
    void *h = dlopen(j->argv[i], RTLD_NOW);
    printf("%s %s\n", j->argv[i], h ? "ok" : "NULL");
    if (h && j->unlink_after && unlink(j->argv[i]) != 0) perror("unlink");
  }
  return NULL;
}

int main(int argc, char **argv) {
  int threaded = 0;
  struct job j = {0, NULL, 0};
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--thread") == 0) threaded = 1;
    else if (strcmp(argv[i], "--unlink") == 0) j.unlink_after = 1;
    else break;
  }
  j.argc = argc - i;
  j.argv = argv + i;
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
