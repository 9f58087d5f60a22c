/*
 * Recall corpus launcher for runs inside a foreign root (compiled there, statically, with the
 * root's own gcc):
 *   forkexec <dir> [NAME=VALUE...] <program> [args...]
 * chdir(<dir>), fork; the child puts NAME=VALUE into its environment and execs <program> (a path);
 * the parent prints the child's pid ("pid <n>"), waits and exits with the child's status.
 *
 * Why: the harness starts it through the host's `unshare` and `chroot`, which exec, so the spawned
 * pid has already mapped the host's unshare, chroot, ld.so and libc before anything runs in the
 * root; soload's records of those would be charged to the run. The forked child has exec'd nothing
 * but <program>: its pid carries only the program's loads. Static, so that it maps no ld.so
 * either: the root's loader first runs in <program> (the "first process of a fresh root" row).
 * The variables go in here, not on the host side, for the same reason (an LD_PRELOAD naming an
 * in-root file must not reach the host's unshare).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: forkexec <dir> [NAME=VALUE...] <program> [args...]\n");
    return 64;
  }
  if (chdir(argv[1]) != 0) return fprintf(stderr, "forkexec: chdir %s: %s\n", argv[1], strerror(errno)), 64;
  int at = 2;
  while (at < argc && argv[at][0] != '/' && strchr(argv[at], '=')) at++;
  if (at >= argc) return fprintf(stderr, "forkexec: no program\n"), 64;
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return perror("forkexec: fork"), 64;
  if (pid == 0) {
    for (int i = 2; i < at; i++) putenv(argv[i]);
    execv(argv[at], argv + at);
    fprintf(stderr, "forkexec: exec %s: %s\n", argv[at], strerror(errno));
    _exit(127);
  }
  printf("pid %d\n", (int)pid);
  fflush(stdout);
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return perror("forkexec: waitpid"), 64;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
