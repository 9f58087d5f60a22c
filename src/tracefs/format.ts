/**
 * Tracepoint `format` files: the kernel's own description of an event's fields and of the line it
 * prints. soload builds its parser schemas for tracepoints from these instead of hard-coding them,
 * because fields differ between kernels (`sched_process_exit` gained `group_dead` in 6.16).
 */

/** What a format file says. */
export interface TracepointFormat {
  name: string;
  /** Event fields, without the `common_*` header fields. */
  fields: string[];
  /** `name=` keys of the print format, in the order the text output prints them. */
  printed: string[];
}

/** Parses a tracepoint `format` file (pure). Undefined when it is not one. */
export function parseTracepointFormat(text: string): TracepointFormat | undefined {
  const name = /^name:\s*(\S+)/m.exec(text)?.[1];
  if (!name) return undefined;
  const fields: string[] = [];
  for (const m of text.matchAll(/^\s*field:([^;]*);/gm)) {
    // "unsigned char common_flags", "char comm[16]", "__data_loc char[] filename": the name is the
    // last identifier before an optional array suffix.
    const decl = m[1]!.trim().replace(/\[[^\]]*\]$/, '');
    const id = /([A-Za-z_]\w*)$/.exec(decl)?.[1];
    if (id && !id.startsWith('common_')) fields.push(id);
  }
  const fmt = /^print fmt:\s*"((?:[^"\\]|\\.)*)"/m.exec(text)?.[1] ?? '';
  const printed = [...fmt.matchAll(/(?:^|\s)([A-Za-z_]\w*)=/g)].map((m) => m[1]!);
  return { name, fields, printed };
}
