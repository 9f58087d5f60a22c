/*
 * Ground truth for the recall corpus (test/recall): soload_write_truth() writes the file-backed
 * executable mappings of this process (the "x" mappings of /proc/self/maps whose path starts with
 * "/"), deduplicated, one path per line, to the file named by $SOLOAD_TRUTH_FILE. It writes
 * "<file>.tmp" and renames it, so the harness never reads a half-written truth. Call it just
 * before exit, after every load the program makes. No-op when the variable is unset.
 */
#ifndef SOLOAD_TRUTH_H
#define SOLOAD_TRUTH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int soload_write_truth(void) {
  const char *out = getenv("SOLOAD_TRUTH_FILE");
  if (!out || !*out) return 0;
  FILE *maps = fopen("/proc/self/maps", "r");
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
    if (*p != '/') continue; /* anonymous, [vdso], [stack], memfd:... */
    p[strcspn(p, "\n")] = '\0';
    int dup = 0;
    for (int i = 0; i < n && !dup; i++) dup = strcmp(seen[i], p) == 0;
    if (!dup && n < (int)(sizeof seen / sizeof seen[0])) seen[n++] = strdup(p);
  }
  fclose(maps);
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  FILE *f = fopen(tmp, "w");
  if (!f) return -1;
  for (int i = 0; i < n; i++) {
    fprintf(f, "%s\n", seen[i]);
    free(seen[i]);
  }
  if (fclose(f) != 0) return -1;
  return rename(tmp, out);
}

#endif
