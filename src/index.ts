/**
 * soload's public API for embedding (the CLI is `dist/src/cli/main.js`): the agent, configuration,
 * the capture plan and its mechanisms, and the error registry.
 */
export { SoloadAgent, stderrLog, type AgentOptions, type AgentStats, type DiagLog } from './agent';
export { loadConfig, redactConfig } from './config/load';
export type { SoloadConfig } from './config/schema';
export { MECHANISMS, type CaptureMechanism, type LoaderSet, type MechanismHandler } from './mechanisms';
export { planCapture, type CapturePlan, type SetChoice } from './plan/select';
export { ErrorCodes, SoloadError, isSoloadError, type ErrorCode } from './errors';
// soload's spelling of names that are bytes (file.path and every other name attribute), and its inverse
export { escapePathBytes, unescapePathBytes, escapeForLog } from './util/path-bytes';
export type { LoadEvent, LoadMethod, ProbeRole, ProbeSpec, TraceRecord } from './types';
