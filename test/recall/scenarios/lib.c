/*
 * A tiny shared library for the recall corpus, compiled many times with different names:
 *   -DFN=<exported function>            required
 *   -DCALLS=<function of a dependency>  optional: FN calls it (the library is then linked against
 *                                       the dependency, which becomes a DT_NEEDED entry)
 */
#ifndef FN
#error "compile with -DFN=name"
#endif

#ifdef CALLS
extern int CALLS(void);
int FN(void) { return CALLS() + 1; }
#else
int FN(void) { return 1; }
#endif
