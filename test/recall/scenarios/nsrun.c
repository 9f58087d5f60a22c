/*
 * Recall corpus launcher for the /etc/ld.so.preload scenario, without touching the host's /etc:
 *   nsrun <scratch-dir> <preload-list-file> <program> [args...]
 * In a private mount namespace (unshare(CLONE_NEWNS), all mounts made private so nothing
 * propagates back), it mounts a tmpfs on <scratch-dir>, overlays /etc with an upper layer on that
 * tmpfs holding ld.so.preload = the contents of <preload-list-file>, then forks; the child execs
 * <program>. The parent prints the child's pid ("pid <n>") to stdout, waits and exits with the
 * child's status. The namespace (and the overlay) vanish with the last process in it. Exit 64 =
 * the namespace/overlay could not be set up (the harness then skips the scenario).
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
#include <unistd.h>

static int fail(const char *what) {
  fprintf(stderr, "nsrun: %s: %s\n", what, strerror(errno));
  return 64;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: nsrun <scratch-dir> <preload-list-file> <program> [args...]\n");
    return 64;
  }
  const char *scratch = argv[1];
  char list[8192];
  FILE *in = fopen(argv[2], "r");
  if (!in) return fail("open preload list");
  size_t len = fread(list, 1, sizeof list - 1, in);
  fclose(in);
  list[len] = '\0';

  if (unshare(CLONE_NEWNS) != 0) return fail("unshare(CLONE_NEWNS)");
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return fail("make / private");
  if (mount("soload-recall", scratch, "tmpfs", 0, "size=1m,mode=0755") != 0) return fail("tmpfs");
  char upper[4096], work[4096], file[4096], opts[12288];
  snprintf(upper, sizeof upper, "%s/upper", scratch);
  snprintf(work, sizeof work, "%s/work", scratch);
  snprintf(file, sizeof file, "%s/ld.so.preload", upper);
  if (mkdir(upper, 0755) != 0 || mkdir(work, 0755) != 0) return fail("mkdir upper/work");
  FILE *out = fopen(file, "w");
  if (!out) return fail("write ld.so.preload");
  fputs(list, out);
  if (fclose(out) != 0) return fail("close ld.so.preload");
  snprintf(opts, sizeof opts, "lowerdir=/etc,upperdir=%s,workdir=%s", upper, work);
  if (mount("overlay", "/etc", "overlay", 0, opts) != 0) return fail("overlay on /etc");

  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return fail("fork");
  if (pid == 0) {
    execv(argv[3], argv + 3);
    fprintf(stderr, "nsrun: exec %s: %s\n", argv[3], strerror(errno));
    _exit(127);
  }
  printf("pid %d\n", (int)pid);
  fflush(stdout);
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return fail("waitpid");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
