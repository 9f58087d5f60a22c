/**
 * ld.so records the (device, inode) of every file it maps in `link_map.l_file_id`; probes that
 * read it (see list-probes.ts fileIdFetch) give soload the identity of the mapped file itself.
 */
/** `mapped` of a LoadEvent from fetched `l_file_id` fields (decimal u64), when read and non-zero. */
export function mappedOf(dev: string | null | undefined, ino: string | null | undefined): { mapped?: { dev?: number; ino: number } } {
  const i = ino != null ? Number(ino) : NaN;
  if (!Number.isSafeInteger(i) || i <= 0) return {};
  const d = dev != null ? Number(dev) : NaN;
  return { mapped: Number.isSafeInteger(d) && d > 0 ? { dev: d, ino: i } : { ino: i } };
}
