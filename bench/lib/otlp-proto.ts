/**
 * Just enough of the OTLP protobuf wire format to read what the benchmarks need from the requests a
 * Collector forwards: per log record its timestamp and a few attributes, per metric the sum of its
 * number data points. A walker over the bytes rather than a generated decoder: at tens of thousands
 * of records per second the receiver shares two cores with soload and the Collector, and building
 * every record as an object would take CPU from the thing being measured.
 *
 * Field numbers are those of opentelemetry-proto (logs/v1, metrics/v1, common/v1).
 */

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

/** A length-delimited region of `buf`: [start, end). */
interface Span {
  start: number;
  end: number;
}

class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  more(): boolean {
    return this.pos < this.end;
  }

  /** Varints above 2^53 lose precision; none of the fields read as numbers here get there. */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (;;) {
      if (this.pos >= this.end) throw new Error('OTLP protobuf: truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
  }

  tag(): { field: number; wire: number } {
    const t = this.varint();
    return { field: Math.floor(t / 8), wire: t & 7 };
  }

  len(): Span {
    const n = this.varint();
    const start = this.pos;
    this.pos += n;
    if (this.pos > this.end) throw new Error('OTLP protobuf: length past the end');
    return { start, end: this.pos };
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_I64) this.pos += 8;
    else if (wire === WIRE_LEN) this.len();
    else if (wire === WIRE_I32) this.pos += 4;
    else throw new Error(`OTLP protobuf: unsupported wire type ${wire}`);
  }
}

/** A fixed64 as a double (ns since the epoch: exact to ~256 ns, ample for latencies in ms). */
function fixed64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at + 4) * 4294967296 + buf.readUInt32LE(at);
}

/** One log record as the benchmarks see it. */
export interface SeenLog {
  /** timeUnixNano as a double. */
  timeNs: number;
  /** timeUnixNano exactly, as 16 hex digits: with pid and path a key for duplicates. */
  timeKey: string;
  attrs: Record<string, string | number | boolean>;
}

/**
 * Reads AnyValue at `span` if it is a scalar (string, bool, int, double); undefined for arrays,
 * kvlists and bytes, which no attribute the benchmarks ask for holds.
 */
function scalar(buf: Buffer, span: Span): string | number | boolean | undefined {
  const r = new Reader(buf, span.start, span.end);
  while (r.more()) {
    const { field, wire } = r.tag();
    if (field === 1 && wire === WIRE_LEN) {
      const s = r.len();
      return buf.toString('utf8', s.start, s.end);
    }
    if (field === 2 && wire === WIRE_VARINT) return r.varint() !== 0;
    if (field === 3 && wire === WIRE_VARINT) return r.varint();
    if (field === 4 && wire === WIRE_I64) {
      const v = buf.readDoubleLE(r.pos);
      r.pos += 8;
      return v;
    }
    r.skip(wire);
  }
  return undefined;
}

/** KeyValue at `span`: the key, and the value's span. */
function keyValue(buf: Buffer, span: Span): { key: string; value?: Span } {
  const r = new Reader(buf, span.start, span.end);
  let key = '';
  let value: Span | undefined;
  while (r.more()) {
    const { field, wire } = r.tag();
    if (field === 1 && wire === WIRE_LEN) {
      const s = r.len();
      key = buf.toString('latin1', s.start, s.end);
    } else if (field === 2 && wire === WIRE_LEN) value = r.len();
    else r.skip(wire);
  }
  return value ? { key, value } : { key };
}

/**
 * Calls `onLeaf` with the span of every submessage reached by following `fields` down from
 * `span` (each step: every length-delimited occurrence of that field number, others skipped).
 * Logs and metrics requests share the shape resource → scope → item: fields [1, 2, 2].
 */
function eachNested(body: Buffer, span: Span, fields: readonly number[], onLeaf: (leaf: Span) => void): void {
  const [field, ...rest] = fields;
  const r = new Reader(body, span.start, span.end);
  while (r.more()) {
    const t = r.tag();
    if (t.field !== field || t.wire !== WIRE_LEN) {
      r.skip(t.wire);
      continue;
    }
    const sub = r.len();
    if (rest.length === 0) onLeaf(sub);
    else eachNested(body, sub, rest, onLeaf);
  }
}

/** The wanted attributes (KeyValue, field `attrField`) of one message, values decoded. */
function wantedAttributes(body: Buffer, span: Span, attrField: number, keys: ReadonlySet<string>, into: SeenLog['attrs']): void {
  const r = new Reader(body, span.start, span.end);
  while (r.more()) {
    const { field, wire } = r.tag();
    if (field !== attrField || wire !== WIRE_LEN) {
      r.skip(wire);
      continue;
    }
    const kv = keyValue(body, r.len());
    if (kv.value && keys.has(kv.key)) {
      const v = scalar(body, kv.value);
      if (v !== undefined) into[kv.key] = v;
    }
  }
}

/**
 * Every log record of an ExportLogsServiceRequest body, with the attributes named in `keys`
 * (others are skipped without decoding their values). A record's attributes include its
 * resource's: in soload's process resource mode process.pid is a resource attribute.
 */
export function readLogRecords(body: Buffer, keys: ReadonlySet<string>, onRecord: (rec: SeenLog) => void): number {
  let n = 0;
  eachNested(body, { start: 0, end: body.length }, [1], (rl) => {
    const resourceAttrs: SeenLog['attrs'] = {};
    eachNested(body, rl, [1], (res) => wantedAttributes(body, res, 1, keys, resourceAttrs));
    eachNested(body, rl, [2, 2], (lr) => {
      const r = new Reader(body, lr.start, lr.end);
      const rec: SeenLog = { timeNs: 0, timeKey: '', attrs: { ...resourceAttrs } };
      while (r.more()) {
        const { field, wire } = r.tag();
        if (field === 1 && wire === WIRE_I64) {
          rec.timeNs = fixed64(body, r.pos);
          rec.timeKey = body.toString('hex', r.pos, r.pos + 8);
          r.pos += 8;
        } else if (field === 6 && wire === WIRE_LEN) {
          const kv = keyValue(body, r.len());
          if (kv.value && keys.has(kv.key)) {
            const v = scalar(body, kv.value);
            if (v !== undefined) rec.attrs[kv.key] = v;
          }
        } else r.skip(wire);
      }
      n++;
      onRecord(rec);
    });
  });
  return n;
}

/** Walks every Metric message of an ExportMetricsServiceRequest (resource → scope → metric). */
function eachMetric(body: Buffer, onMetric: (name: string, r: Reader) => void): void {
  eachNested(body, { start: 0, end: body.length }, [1, 2, 2], (m) => {
    // the name comes first in practice, but the wire format does not promise it: find it first
    const probe = new Reader(body, m.start, m.end);
    let name = '';
    while (probe.more()) {
      const { field, wire } = probe.tag();
      if (field === 1 && wire === WIRE_LEN) {
        const s = probe.len();
        name = body.toString('utf8', s.start, s.end);
        break;
      }
      probe.skip(wire);
    }
    onMetric(name, new Reader(body, m.start, m.end));
  });
}

/** Sum over the data points of a NumberDataPoint list (Sum = field 7, Gauge = field 5). */
function sumPoints(body: Buffer, span: Span): number {
  let total = 0;
  const r = new Reader(body, span.start, span.end);
  while (r.more()) {
    const { field, wire } = r.tag();
    if (field !== 1 || wire !== WIRE_LEN) {
      r.skip(wire);
      continue;
    }
    const dp = r.len();
    const d = new Reader(body, dp.start, dp.end);
    while (d.more()) {
      const t = d.tag();
      if (t.field === 4 && t.wire === WIRE_I64) {
        total += body.readDoubleLE(d.pos);
        d.pos += 8;
      } else if (t.field === 6 && t.wire === WIRE_I64) {
        total += Number(body.readBigInt64LE(d.pos));
        d.pos += 8;
      } else d.skip(t.wire);
    }
  }
  return total;
}

/**
 * Counters and gauges of an ExportMetricsServiceRequest: metric name → sum of its data points
 * (over every attribute set: `soload.records.dropped` summed over exporter and reason).
 * Histograms are left out.
 */
export function readMetricSums(body: Buffer): Map<string, number> {
  const out = new Map<string, number>();
  eachMetric(body, (name, r) => {
    while (r.more()) {
      const { field, wire } = r.tag();
      if ((field === 5 || field === 7) && wire === WIRE_LEN) out.set(name, (out.get(name) ?? 0) + sumPoints(r.buf, r.len()));
      else r.skip(wire);
    }
  });
  return out;
}
