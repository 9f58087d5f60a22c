/*
 * The library the dlopen workload maps and unmaps: no DT_NEEDED beyond libc, so each dlopen maps
 * exactly one new object. The constructor counts mappings in the driver (see dlopen.c).
 */
extern int bench_ctor_runs;

__attribute__((constructor)) static void count_mapping(void) { bench_ctor_runs++; }

int bench_plugin_value(void) { return 42; }
