/* The library the generators load: one symbol, no dependencies beyond libc, so a dlopen maps exactly this object. */
int soload_bench_plug(void) { return 7; }
