/*
 * Recall corpus program: loads a library from memory, the way in-memory loaders (and some
 * malware) do:
 *   memfd_dlopen <memfd-name> <library>
 * memfd_create(<memfd-name>, 0), copies <library>'s bytes into it, dlopen("/proc/self/fd/<N>")
 * with RTLD_NOW, prints "pid <pid> fd <N> ok|NULL", writes its ground truth and exits. The memfd
 * stays open until exit (the mapping alone would keep it alive too). /proc/self/maps shows the
 * mapping as "/memfd:<memfd-name> (deleted)".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "truth.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: memfd_dlopen <memfd-name> <library>\n");
    return 64;
  }
  int mfd = memfd_create(argv[1], 0);
  if (mfd < 0) return perror("memfd_create"), 3;
  int in = open(argv[2], O_RDONLY | O_CLOEXEC);
  if (in < 0) return perror(argv[2]), 3;
  char buf[65536];
  for (ssize_t n; (n = read(in, buf, sizeof buf)) != 0;) {
    if (n < 0 || write(mfd, buf, (size_t)n) != n) return perror("copy"), 3;
  }
  close(in);
  char name[64];
  snprintf(name, sizeof name, "/proc/self/fd/%d", mfd);
  void *h = dlopen(name, RTLD_NOW);
  printf("pid %d fd %d %s\n", (int)getpid(), mfd, h ? "ok" : "NULL");
  fflush(stdout);
  if (!h) return fprintf(stderr, "dlopen %s: %s\n", name, dlerror()), 4;
  return soload_write_truth() == 0 ? 0 : 2;
}
