/*
 * Recall corpus program: calls ENTRY() when compiled with -DENTRY=<function> (a DT_NEEDED
 * library's export), writes its ground truth and exits at once. Linked with or without libraries
 * it serves the DT_NEEDED, 40+-library, LD_PRELOAD, /etc/ld.so.preload and short-lived scenarios.
 */
#include "truth.h"

#ifdef ENTRY
extern int ENTRY(void);
#endif

int main(void) {
  int r = 0;
#ifdef ENTRY
  r = ENTRY() > 0 ? 0 : 1;
#endif
  if (soload_write_truth() != 0) return 2;
  return r;
}
