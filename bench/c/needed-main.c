/*
 * The needed40 workload's program. It does nothing itself: it is linked with --no-as-needed
 * against 40 generated libraries, so all its cost is ld.so mapping 40 DT_NEEDED objects at every
 * start — the start-up path that _dl_debug_state and loader probes sit on.
 */
int main(void) { return 0; }
