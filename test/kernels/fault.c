/*
 * The (fault) puzzle, reproducible: `fault FILE` maps FILE (4 pages, never read before) and calls
 * take() with pointers a uprobe on take() fetches as strings:
 *   1. into page 2 of the fresh mapping, before the process touched it (no page-table entry yet:
 *      a uprobe handler cannot take a page fault, so the fetch reads "(fault)" even though the
 *      file's bytes sit in the page cache),
 *   2. the same pointer after the process read a byte of that page (resident: the string),
 *   3. a string on the stack (always resident),
 *   4. the same file page after munmap() (the address is no longer mapped: "(fault)"),
 *   5. a page of the mapping made PROT_NONE (mapped, resident, but not readable: "(fault)").
 * The strings in FILE are NUL-terminated at those offsets (test/kernels/guest.ts writes it).
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* Data a probe on take() reads with @+ file-offset fetches (features.ts: does @+ reach .data?). */
long kmatrix_magic = 0x1122334455667788L;
const char *kmatrix_ptr = "pointed-to-string";

__attribute__((noinline)) void take(const char *s, int step) {
  __asm__ volatile("" : : "r"(s), "r"(step) : "memory");
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) return 3;
  const long page = sysconf(_SC_PAGESIZE);
  char *m = mmap(NULL, 4 * page, PROT_READ, MAP_PRIVATE, fd, 0);
  if (m == MAP_FAILED) return 4;
  take(m + 2 * page, 1 + (int)(kmatrix_magic & 0));
  volatile char c = m[2 * page];
  (void)c;
  take(m + 2 * page, 2);
  char local[32] = "on-the-stack";
  take(local, 3);
  char *m2 = mmap(NULL, 4 * page, PROT_READ, MAP_PRIVATE, fd, 0);
  if (m2 == MAP_FAILED) return 5;
  volatile char c2 = m2[2 * page];
  (void)c2;
  if (mprotect(m2 + 2 * page, page, PROT_NONE) != 0) return 6;
  munmap(m, 4 * page);
  take(m + 2 * page, 4);
  take(m2 + 2 * page, 5);
  printf("pid %d\n", (int)getpid());
  return 0;
}
