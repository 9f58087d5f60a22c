/*
 * Timing driver for the spawn-based workloads: posix_spawn()s argv[2..] argv[1] times, one after
 * the other, waiting for each, and prints the wall time of the whole loop in milliseconds.
 *
 * The clock runs here, not in Node, so the measurement holds only what a traced process pays
 * (exec, ld.so start-up, exit) and none of Node's child-process machinery or event-loop jitter.
 * The driver's own start-up is outside the timed loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s N PROGRAM [ARGS...]\n", argv[0]);
    return 2;
  }
  long n = strtol(argv[1], NULL, 10);
  /* Children write nothing we want; their stdout must not be the pipe Node reads our result from. */
  int devnull = open("/dev/null", O_WRONLY);
  if (devnull < 0) {
    perror("/dev/null");
    return 1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, devnull, STDOUT_FILENO);
  double t0 = now_ms();
  for (long i = 0; i < n; i++) {
    pid_t pid;
    int err = posix_spawn(&pid, argv[2], &fa, NULL, &argv[2], environ);
    if (err != 0) {
      fprintf(stderr, "posix_spawn %s: %s\n", argv[2], strerror(err));
      return 1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) {
        perror("waitpid");
        return 1;
      }
    }
    /* A failing workload would time an error path, not the program: stop rather than report it. */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "%s exited with status 0x%x at run %ld\n", argv[2], status, i);
      return 1;
    }
  }
  double t1 = now_ms();
  printf("%.3f\n", t1 - t0);
  return 0;
}
