/*
 * One of the needed40 workload's libraries, compiled once per index (-DINDEX=k into libneedK.so).
 * A distinct exported symbol per copy keeps them distinct objects with their own symbol tables, as
 * real dependencies are; the loader maps, relocates and runs the constructor list of each.
 */
#ifndef INDEX
#error "compile with -DINDEX=<n>"
#endif
#define PASTE(a, b) a##b
#define NAME(i) PASTE(bench_needed_, i)

int NAME(INDEX)(void) { return INDEX; }
