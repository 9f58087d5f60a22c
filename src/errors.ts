/**
 * Every error soload raises on purpose carries a stable `code` (documented in README.md, "Error codes")
 * and a message that tells the user what to do next.
 */
export const ErrorCodes = {
  /** The configuration is invalid: a key has a wrong type or value. Exit code 2. */
  CONFIG_INVALID: 'SOLOAD_ERR_CONFIG_INVALID',
  /** A config file named with --config could not be read or parsed. Exit code 2. */
  CONFIG_FILE: 'SOLOAD_ERR_CONFIG_FILE',
  /** A file that should be an ELF object is not one, or is truncated/corrupt. */
  ELF_INVALID: 'SOLOAD_ERR_ELF_INVALID',
  /** A symbol soload needs is absent from a library's .dynsym, .symtab and debug files. */
  SYMBOL_NOT_FOUND: 'SOLOAD_ERR_SYMBOL_NOT_FOUND',
  /** A symbol's address is not inside any PT_LOAD segment, so it has no file offset. */
  SYMBOL_NOT_MAPPED: 'SOLOAD_ERR_SYMBOL_NOT_MAPPED',
  /** tracefs is neither mounted nor mountable. */
  TRACEFS_UNAVAILABLE: 'SOLOAD_ERR_TRACEFS_UNAVAILABLE',
  /** The kernel lacks uprobe_events (CONFIG_UPROBE_EVENTS). */
  UPROBES_UNAVAILABLE: 'SOLOAD_ERR_UPROBES_UNAVAILABLE',
  /** The kernel refused a probe definition; the message quotes tracefs error_log. */
  PROBE_REJECTED: 'SOLOAD_ERR_PROBE_REJECTED',
  /** Writing tracefs control files failed (permissions, busy instance). */
  TRACEFS_IO: 'SOLOAD_ERR_TRACEFS_IO',
  /** No library matched a probe's `library` selector on this host. */
  LIBRARY_NOT_FOUND: 'SOLOAD_ERR_LIBRARY_NOT_FOUND',
  /** soload lacks what writing tracefs needs: uid 0, or CAP_DAC_OVERRIDE for another uid (README "Privileges"). */
  NOT_PRIVILEGED: 'SOLOAD_ERR_NOT_PRIVILEGED',
  /** Kernel lockdown (confidentiality mode) or a security module forbids tracefs. */
  KERNEL_LOCKDOWN: 'SOLOAD_ERR_KERNEL_LOCKDOWN',
  /** tracefs is mounted read-only for soload (a read-only bind, ProtectKernelTunables=, a container's /sys). */
  TRACEFS_READ_ONLY: 'SOLOAD_ERR_TRACEFS_READ_ONLY',
  /** No probe could be installed at all, so soload would observe nothing. */
  NOTHING_TO_PROBE: 'SOLOAD_ERR_NOTHING_TO_PROBE',
  /** A library's path cannot be written to uprobe_events (whitespace) and no alias could be made. */
  PATH_NOT_PROBEABLE: 'SOLOAD_ERR_PATH_NOT_PROBEABLE',
  /** Calibrating ld.so's private link_map layout against a helper process failed. */
  CALIBRATION_FAILED: 'SOLOAD_ERR_CALIBRATION_FAILED',
  /** A probe definition soload builds is inconsistent (an internal invariant; please report it). */
  PROBE_INVALID: 'SOLOAD_ERR_PROBE_INVALID',
  /** A root's /etc/ld.so.cache could not be decoded: the `ld_so_cache` search step is not claimed for that root. */
  LDCACHE_INVALID: 'SOLOAD_ERR_LDCACHE_INVALID',
  /** The state directory (security.stateDir) is unusable: not a directory, not owned by soload's uid, writable by others, or unreadable. */
  STATE_DIR_UNUSABLE: 'SOLOAD_ERR_STATE_DIR',
  /** soload was used against its own contract (a programming error; please report it). */
  INTERNAL: 'SOLOAD_ERR_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** An error with a stable, documented code. */
export class SoloadError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SoloadError';
    this.code = code;
    this.details = details;
  }
}

/** True when `err` is a SoloadError carrying `code`. */
export function isSoloadError(err: unknown, code?: ErrorCode): err is SoloadError {
  return err instanceof SoloadError && (code === undefined || err.code === code);
}
