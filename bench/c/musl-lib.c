/*
 * A small musl-built library, compiled once per index (-DINDEX=k): the ten DT_NEEDED objects of
 * musl-needed10 (libmneedK.so), and, with -DCOUNT_CTOR, the library musl-dlopen copies to distinct
 * files. A distinct exported symbol per index keeps the needed ones distinct objects with their own
 * symbol tables. With COUNT_CTOR the constructor counts mappings in the driver (musl-dlopen.c
 * exports bench_musl_ctor_runs with -rdynamic), so the driver can prove every dlopen mapped a new
 * object.
 */
#ifndef INDEX
#error "compile with -DINDEX=<n>"
#endif
#define PASTE(a, b) a##b
#define NAME(i) PASTE(bench_musl_lib_, i)

#ifdef COUNT_CTOR
extern int bench_musl_ctor_runs;
__attribute__((constructor)) static void count_mapping(void) { bench_musl_ctor_runs++; }
#endif

int NAME(INDEX)(void) { return INDEX; }
