/*
 * The musl workloads' program (musl-spawn, and the main program of musl-needed10): it does nothing
 * itself. Compiled with musl-gcc, dynamically linked, PT_INTERP /lib/ld-musl-<arch>.so.1, so all of
 * a run is exec, musl's loader mapping its DT_NEEDED objects (none but libc itself, or the ten of
 * musl-needed10) and __libc_start_main — the places soload's musl-lists mechanism probes.
 */
int main(void) { return 0; }
