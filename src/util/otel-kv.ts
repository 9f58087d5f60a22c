/**
 * The OpenTelemetry `key1=value1,key2=value2` list form, shared by configuration
 * (OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES of soload itself) and enrichment (the
 * OTEL_RESOURCE_ATTRIBUTES of a traced process). It lives here, with no imports, so that neither of
 * those layers has to import the other.
 */

/**
 * Parses an OTel key-value list: values are percent-decoded, surrounding whitespace trimmed, and
 * malformed members skipped (the spec says to discard the invalid member, not the whole list).
 * Later members win over earlier ones with the same key.
 */
export function parseOtelKeyValueList(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const member of text.split(',')) {
    const eq = member.indexOf('=');
    if (eq <= 0) continue;
    const key = member.slice(0, eq).trim();
    const raw = member.slice(eq + 1).trim();
    if (!key) continue;
    try {
      out[key] = decodeURIComponent(raw);
    } catch {
      continue;
    }
  }
  return out;
}
