/*
 * Starts N copies of PROG (fork + exec, so each maps its own libraries through ld.so) and prints
 * "up N" once every copy has written its byte to the shared pipe, then sleeps. The copies stay in
 * the spawner's process group: the benchmark ends them all with one kill of that group.
 *   usage: spawner N PROG
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s N PROG\n", argv[0]);
    return 2;
  }
  long n = atol(argv[1]);
  int fds[2];
  if (pipe(fds) != 0) {
    perror("pipe");
    return 1;
  }
  for (long i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 1;
    }
    if (pid == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
      execl(argv[2], argv[2], (char *)NULL);
      _exit(127);
    }
  }
  close(fds[1]);
  long up = 0;
  char buf[4096];
  while (up < n) {
    ssize_t r = read(fds[0], buf, sizeof buf);
    if (r <= 0) break; /* every copy closed its end: some died before writing */
    up += r;
  }
  printf("up %ld\n", up);
  fflush(stdout);
  for (;;) pause();
}
