/*
 * Ground truth for the recall corpus (test/recall): soload_write_truth() writes the executable
 * mappings of this process (the "x" mappings of /proc/self/maps whose path starts with "/"),
 * deduplicated, one path per line, exactly as the kernel prints them, to the file named by
 * $SOLOAD_TRUTH_FILE. The harness compares those strings with soload's file.path; its only
 * normalisation is stripping a trailing " (deleted)" (and then expecting soload.file.deleted=true),
 * so this file must not canonicalise anything itself.
 *
 * Kept: every "/..." path, which includes "/memfd:NAME (deleted)" (a memfd's mapping) and
 * "/path (deleted)" (a file unlinked while mapped). Skipped: anonymous mappings, [vdso], [stack].
 *
 * It writes "<file>.tmp" and renames it, so the harness never reads a half-written truth. Call it
 * just before exit, after every load the program makes, while everything is still mapped. No-op
 * when the variable is unset.
 *
 * A program that chroot()s calls soload_truth_prepare() first: /proc is not mounted in the new
 * root and the truth file lies outside it, so /proc/self/maps and the truth file's directory are
 * opened before the chroot and used through their descriptors afterwards. (maps is generated at
 * read time, relative to the reader's root at that time, so it still shows the chrooted view.)
 */
#ifndef SOLOAD_TRUTH_H
#define SOLOAD_TRUTH_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int soload_truth_maps_fd = -1;        /* /proc/self/maps, opened by soload_truth_prepare() */
static int soload_truth_dir_fd = AT_FDCWD;   /* directory of $SOLOAD_TRUTH_FILE, likewise */
static const char *soload_truth_name = NULL; /* $SOLOAD_TRUTH_FILE, or its basename once prepared */

/* Opens what soload_write_truth() needs before the process loses access to it (chroot). */
static int soload_truth_prepare(void) {
  const char *out = getenv("SOLOAD_TRUTH_FILE");
  if (!out || !*out) return 0;
  soload_truth_maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (soload_truth_maps_fd < 0) return -1;
  const char *slash = strrchr(out, '/');
  if (slash) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash == out ? 1 : (int)(slash - out), out);
    soload_truth_dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (soload_truth_dir_fd < 0) return -1;
    soload_truth_name = slash + 1;
  } else {
    soload_truth_name = out;
  }
  return 0;
}

static int soload_write_truth(void) {
  const char *out = soload_truth_name ? soload_truth_name : getenv("SOLOAD_TRUTH_FILE");
  if (!out || !*out) return 0;
  FILE *maps = soload_truth_maps_fd >= 0 ? fdopen(soload_truth_maps_fd, "r") : fopen("/proc/self/maps", "r");
  if (!maps) return -1;
  char *seen[512];
  int n = 0;
  char line[4096 + 256];
  while (fgets(line, sizeof line, maps)) {
    /* address perms offset dev inode [path] */
    char perms[8] = "";
    int pathAt = 0;
    if (sscanf(line, "%*s %7s %*s %*s %*s %n", perms, &pathAt) < 1 || pathAt == 0) continue;
    if (strlen(perms) < 3 || perms[2] != 'x') continue;
    char *p = line + pathAt;
    while (*p == ' ') p++;
    if (*p != '/') continue; /* anonymous, [vdso], [stack] */
    p[strcspn(p, "\n")] = '\0';
    int dup = 0;
    for (int i = 0; i < n && !dup; i++) dup = strcmp(seen[i], p) == 0;
    if (!dup && n < (int)(sizeof seen / sizeof seen[0])) seen[n++] = strdup(p);
  }
  fclose(maps);
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  int fd = openat(soload_truth_dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) return -1;
  for (int i = 0; i < n; i++) {
    fprintf(f, "%s\n", seen[i]);
    free(seen[i]);
  }
  if (fclose(f) != 0) return -1;
  return renameat(soload_truth_dir_fd, tmp, soload_truth_dir_fd, out);
}

#endif
