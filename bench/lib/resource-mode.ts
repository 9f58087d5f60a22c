/**
 * The benchmarks measure soload as users run it: in its default resource mode ("process", one
 * resource and LoggerProvider per traced process). The test helper would otherwise start soload in
 * the agent layout that the older integration tests assert.
 */
export const DEFAULT_RESOURCE_MODE: NodeJS.ProcessEnv = { SOLOAD_RESOURCE_MODE: 'process' };
