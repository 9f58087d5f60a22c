/*
 * Recall corpus launcher for loads through a bind mount that exists only in a private mount
 * namespace (what a container's volume mount looks like from the host):
 *   nsbind <linger-ms> <scratch-dir> <source-dir> <program> [args...]
 * unshare(CLONE_NEWNS), all mounts made private (nothing propagates back to the host), a tmpfs on
 * <scratch-dir>, <source-dir> bind-mounted onto <scratch-dir>/bound, and a symlink
 * <scratch-dir>/link -> bound on that tmpfs. Then it forks; the child execs <program> (which
 * dlopens e.g. <scratch-dir>/link/libplug.so: resolving that name to <scratch-dir>/bound/libplug.so,
 * the path the child's /proc/self/maps shows, takes the namespace; on the host <scratch-dir> is an
 * empty directory). The parent prints the child's pid ("pid <n>"), waits for it, stays alive
 * <linger-ms> and exits with the child's status. Exit 64 = the namespace could not be set up (the
 * harness then skips the scenarios).
 *
 * Why linger: this launcher plays the namespace's init. soload can resolve a path in a process's
 * mount namespace only while some process in that namespace lives; in a container the init (and
 * usually other processes) outlive a short-lived process that loads something, so the namespace
 * survives it. <linger-ms> 300 models that. <linger-ms> 0 is the honest worst case (the namespace
 * vanishes the moment the loading process exits, possibly before soload read its records); the
 * corpus measures it separately, as an informational scenario.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *what) {
  fprintf(stderr, "nsbind: %s: %s\n", what, strerror(errno));
  return 64;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: nsbind <linger-ms> <scratch-dir> <source-dir> <program> [args...]\n");
    return 64;
  }
  long linger_ms = strtol(argv[1], NULL, 10);
  const char *scratch = argv[2];
  char bound[4096], link[4096];
  snprintf(bound, sizeof bound, "%s/bound", scratch);
  snprintf(link, sizeof link, "%s/link", scratch);

  if (unshare(CLONE_NEWNS) != 0) return fail("unshare(CLONE_NEWNS)");
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return fail("make / private");
  if (mount("soload-recall", scratch, "tmpfs", 0, "size=1m,mode=0755") != 0) return fail("tmpfs");
  if (mkdir(bound, 0755) != 0) return fail("mkdir bound");
  if (mount(argv[3], bound, NULL, MS_BIND, NULL) != 0) return fail("bind mount");
  if (symlink("bound", link) != 0) return fail("symlink link -> bound");

  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return fail("fork");
  if (pid == 0) {
    execv(argv[4], argv + 4);
    fprintf(stderr, "nsbind: exec %s: %s\n", argv[4], strerror(errno));
    _exit(127);
  }
  printf("pid %d\n", (int)pid);
  fflush(stdout);
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return fail("waitpid");
  if (linger_ms > 0) {
    struct timespec ts = {linger_ms / 1000, (linger_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
