/* A library for the scale benchmark's sleepers; built once per IDX so each copy exports its own name. */
#define CAT(a, b) a##b
#define NAME(i) CAT(soload_scale_lib, i)
int NAME(IDX)(void) { return IDX; }
