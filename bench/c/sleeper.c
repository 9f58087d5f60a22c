/*
 * A process that stays alive with its libraries mapped, for the scale benchmark: writes one byte to
 * stdout once main runs (so every DT_NEEDED object is mapped by then), then sleeps until killed.
 */
#include <unistd.h>

int soload_scale_lib0(void);
int soload_scale_lib1(void);
int soload_scale_lib2(void);
int soload_scale_lib3(void);

int main(void) {
  /* references keep the libraries DT_NEEDED under --as-needed linkers */
  volatile int v = soload_scale_lib0() + soload_scale_lib1() + soload_scale_lib2() + soload_scale_lib3();
  (void)v;
  if (write(1, "u", 1) != 1) return 1;
  close(1);
  for (;;) pause();
}
