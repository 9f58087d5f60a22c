/**
 * Every deployable example in examples/ is checked with the real tools: Collector YAML with
 * `otelcol-soload validate` (overlays merged the way users run them), soload configs with soload's
 * own strict config loader, JSON files parse, kustomize references exist, systemd units verify.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config/load';
import { COLLECTOR_BIN, REPO_ROOT, requireCollectorBinary, validateCollectorConfig } from '../helpers/collector';

const EX = path.join(REPO_ROOT, 'examples');

function validate(files: string[], env: Record<string, string | undefined> = {}) {
  requireCollectorBinary();
  const r = spawnSync(COLLECTOR_BIN, ['validate', ...files.flatMap((f) => ['--config', f])], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

test('examples/kubernetes/gateway-collector.yaml validates, by default and with every backend selected', () => {
  const f = path.join(EX, 'kubernetes', 'gateway-collector.yaml');
  const def = validateCollectorConfig(f);
  assert.equal(def.status, 0, def.output);
  const all = validateCollectorConfig(f, {
    SOLOAD_LOG_EXPORTERS: '[debug, otlphttp/loki, otlphttp/elastic, otlphttp/victorialogs]',
    SOLOAD_METRIC_EXPORTERS: '[debug, otlphttp/metrics, otlphttp/elastic]',
  });
  assert.equal(all.status, 0, all.output);
});

test('examples/elastic overlay validates merged over otel-collector.yaml', () => {
  const r = validate([path.join(REPO_ROOT, 'otel-collector.yaml'), path.join(EX, 'elastic', 'otel-collector.elastic.yaml')], {
    ELASTIC_OTLP_ENDPOINT: 'https://elastic.example:443',
    ELASTIC_AUTHORIZATION: 'ApiKey abc',
  });
  assert.equal(r.status, 0, r.output);
});

test('otel-collector.yaml validates with the metrics pipeline routed to every metrics exporter', () => {
  const r = validateCollectorConfig(path.join(REPO_ROOT, 'otel-collector.yaml'), {
    SOLOAD_METRIC_EXPORTERS: '[debug, otlphttp/metrics, file/metrics, otlphttp/elastic]',
    OTELCOL_METRICS_LEVEL: 'none',
  });
  assert.equal(r.status, 0, r.output);
});

test('every collector YAML under examples/ is covered by a validation above', () => {
  const yamls: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(e.name) && /\n(receivers|exporters):/.test('\n' + fs.readFileSync(p, 'utf8'))) yamls.push(path.relative(EX, p));
    }
  };
  walk(EX);
  assert.deepEqual(yamls.sort(), ['elastic/otel-collector.elastic.yaml', 'kubernetes/gateway-collector.yaml']);
});

test('example soload configs pass soload’s strict config validation', () => {
  for (const f of ['soload.json', 'kubernetes/soload.json']) {
    const c = loadConfig({ file: path.join(EX, f), env: {} });
    assert.ok(c.otel.delivery.maxBufferedRecords >= 24_000, f);
  }
  const k8s = loadConfig({ file: path.join(EX, 'kubernetes', 'soload.json'), env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://soload-gateway.soload.svc:4318' } });
  assert.equal(k8s.otel.endpoint, 'http://soload-gateway.soload.svc:4318/v1/logs');
  assert.equal(k8s.otel.metrics.endpoint, 'http://soload-gateway.soload.svc:4318/v1/metrics');
});

test('Grafana dashboard is valid JSON with a query in every panel; kustomization references exist', () => {
  const dash = JSON.parse(fs.readFileSync(path.join(EX, 'loki', 'grafana-dashboard.json'), 'utf8')) as { panels: Array<{ type: string; title: string; targets?: Array<{ expr: string }> }> };
  for (const p of dash.panels.filter((x) => x.type !== 'row')) assert.ok(p.targets?.[0]?.expr, `panel ${p.title} has no query`);
  const kust = fs.readFileSync(path.join(EX, 'kubernetes', 'kustomization.yaml'), 'utf8');
  for (const m of kust.matchAll(/^\s+- (?:[\w.-]+=)?([\w./-]+\.(?:ya?ml|json))$/gm)) {
    assert.ok(fs.existsSync(path.join(EX, 'kubernetes', m[1]!)), `kustomization references missing ${m[1]}`);
  }
});

test('systemd units pass systemd-analyze verify (when systemd-analyze is installed)', (t) => {
  const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    t.skip('systemd-analyze not installed');
    return;
  }
  for (const unit of ['soload.service', 'otelcol-soload.service']) {
    const r = spawnSync('systemd-analyze', ['verify', path.join(EX, 'systemd', unit)], { encoding: 'utf8' });
    // A missing ExecStart binary (/opt/soload, /usr/local/bin/otelcol-soload) on the test host is fine.
    const problems = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() && !/is not executable|No such file or directory|Command .* is not/.test(l));
    assert.deepEqual(problems, [], `${unit}: ${r.stdout}${r.stderr}`);
  }
});
