export { DEFAULT_ALIAS_ROOT, PROCESS_TRACEPOINTS, schemasFor, SoloadAgent, type AgentOptions, type AgentStats } from './agent';
export { LoadChain, type ChainStats } from './chain';
export { stderrLog, type DiagLog } from './log';
export { cleanupStale, isSoloadProcess } from './stale';
