/*
 * Recall corpus program for loads inside a chroot (runs as root):
 *   chroot_dlopen <new-root> <path-in-new-root>...
 * Opens what its truth needs (soload_truth_prepare: /proc/self/maps and the truth file's
 * directory, both outside the new root), chroot(<new-root>), chdir("/"), then dlopen()s each path
 * (as seen inside the new root) with RTLD_NOW, prints "<path> ok|NULL", writes its truth and exits
 * at once: no sleep, short-lived is the point. The objects mapped before the chroot (the program,
 * ld.so, libc) are outside the new root; /proc/self/maps prints them with their host paths.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

#include "truth.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: chroot_dlopen <new-root> <path-in-new-root>...\n");
    return 64;
  }
  if (soload_truth_prepare() != 0) return perror("truth"), 3;
  if (chroot(argv[1]) != 0) return perror("chroot"), 64;
  if (chdir("/") != 0) return perror("chdir /"), 3;
  int failed = 0;
  for (int i = 2; i < argc; i++) {
    void *h = dlopen(argv[i], RTLD_NOW);
    printf("%s %s\n", argv[i], h ? "ok" : "NULL");
    if (!h) fprintf(stderr, "dlopen %s: %s\n", argv[i], dlerror()), failed = 1;
  }
  fflush(stdout);
  if (soload_write_truth() != 0) return 2;
  return failed ? 4 : 0;
}
