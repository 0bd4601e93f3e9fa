// deploy/: every object of the base and of the CPU overlay (its JSON 6902 patch applied as kustomize does)
// validates against Kubernetes' OpenAPI schemas (kubernetes-models: types, required fields, formats; it does
// not refuse unknown fields, which a server-side `kubectl apply --dry-run=server` would), and what the
// manifests assume of the server agrees with the server itself: the port and host the args give, the probe
// paths and what they answer while serving and while draining, the drain grace against the termination grace,
// and the metric the autoscaler reads.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseFlags, repoRoot, type ServerConfig, serverDefaults, serverFlags } from '../../src/config.js';
import { startTestServer, type TestServer } from '../server/helpers/server.js';

type K8sObject = { apiVersion: string; kind: string; metadata: { name: string }; [k: string]: unknown };
const deployDir = join(repoRoot, 'deploy');

/** The models of the kinds deploy/ holds: each validates its object against the OpenAPI schema. */
const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
};

const readYaml = (path: string) => parseYaml(readFileSync(path, 'utf8'));

/** What `kubectl apply -k DIR` applies: the resources (folders recursively), then the JSON 6902 patches. */
function render(dir: string): K8sObject[] {
  const k = readYaml(join(dir, 'kustomization.yaml')) as {
    resources: string[];
    patches?: Array<{ path: string; target: { kind: string; name: string } }>;
  };
  const objects: K8sObject[] = [];
  for (const r of k.resources) {
    const path = join(dir, r);
    if (r.endsWith('.yaml')) {
      for (const doc of parseAllDocuments(readFileSync(path, 'utf8'))) objects.push(doc.toJS() as K8sObject);
    } else {
      objects.push(...render(path));
    }
  }
  for (const p of k.patches ?? []) {
    const ops = readYaml(join(dir, p.path)) as Operation[];
    const targets = objects.filter((o) => o.kind === p.target.kind && o.metadata.name === p.target.name);
    expect(targets, `${dir}: patch ${p.path}`).toHaveLength(1);
    const i = objects.indexOf(targets[0]!);
    objects[i] = jsonpatch.applyPatch(structuredClone(targets[0]!), ops, true).newDocument;
  }
  return objects;
}

const variants: Array<[string, K8sObject[]]> = [
  ['base (GPU)', render(join(deployDir, 'base'))],
  ['overlays/cpu', render(join(deployDir, 'overlays', 'cpu'))],
];

// The manifests' shapes are what the schema test checks; here they are read as plain JSON.
// biome-ignore lint/suspicious/noExplicitAny: a parsed manifest, walked by the paths Kubernetes defines
type Json = Record<string, any>;
const find = (objects: K8sObject[], kind: string) => objects.find((o) => o.kind === kind) as never as Json;

/** The server's config as the container's args give it (the image's entrypoint is `kvserve`). */
function containerConfig(objects: K8sObject[]): { config: ServerConfig; container: Json } {
  const container = find(objects, 'Deployment').spec.template.spec.containers[0];
  const [command, ...flags] = container.args as string[];
  expect(command).toBe('serve');
  // $(MODEL) is expanded by the kubelet from the container's env.
  const env = new Map((container.env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value]));
  const expanded = flags.map((f) => f.replace(/\$\((\w+)\)/g, (_, v: string) => env.get(v) ?? `$(${v})`));
  expect(expanded.join(' ')).not.toMatch(/\$\(/);
  return { config: parseFlags<ServerConfig>(expanded, serverFlags, serverDefaults()).config, container };
}

describe.each(variants)('deploy/%s', (_name, objects) => {
  it('validates against the Kubernetes schemas', () => {
    expect(objects.map((o) => o.kind).sort()).toEqual([
      'Deployment',
      'HorizontalPodAutoscaler',
      'PersistentVolumeClaim',
      'Service',
    ]);
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `${o.apiVersion} ${o.kind}`).toBeDefined();
      expect(() => new Model!(o as never).validate(), `${o.kind} ${o.metadata.name}`).not.toThrow();
    }
  });

  it("agrees with the server: its port and host, the probes' paths, the grace after the drain", () => {
    const { config, container } = containerConfig(objects);
    const ports = container.ports as Array<{ name: string; containerPort: number }>;
    const http = ports.find((p) => p.name === 'http')!;
    expect(http.containerPort).toBe(config.port);
    expect(config.host).toBe('0.0.0.0'); // the default, 127.0.0.1, is unreachable from the kubelet
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      expect(container[probe].httpGet.port, probe).toBe('http');
    }
    expect(container.startupProbe.httpGet.path).toBe('/health');
    expect(container.readinessProbe.httpGet.path).toBe('/health');
    expect(container.livenessProbe.httpGet.path).toBe('/livez');
    // Kubernetes sends SIGTERM after preStop; the server then drains for --drain-timeout, gives the requests it
    // cut 5 s to be answered (closeGracefully) and frees the engines. All of it inside the grace period.
    const preStop = container.lifecycle.preStop.exec.command as string[];
    expect(preStop[0]).toBe('sleep');
    const spec = find(objects, 'Deployment').spec.template.spec;
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThan(Number(preStop[1]) + config.drainTimeout + 5);
    const service = find(objects, 'Service');
    expect(service.spec.ports[0].targetPort).toBe('http');
    expect(service.spec.selector).toEqual(find(objects, 'Deployment').spec.selector.matchLabels);
    const annotations = find(objects, 'Deployment').spec.template.metadata.annotations;
    expect(Number(annotations['prometheus.io/port'])).toBe(config.port);
  });

  it('scales on the metric the Prometheus adapter serves from the server', () => {
    const hpa = find(objects, 'HorizontalPodAutoscaler');
    expect(hpa.spec.scaleTargetRef).toMatchObject({
      kind: 'Deployment',
      name: find(objects, 'Deployment').metadata.name,
    });
    const rules = readYaml(join(deployDir, 'prometheus-adapter', 'rules.yaml')).rules as Array<{
      seriesQuery: string;
      name: { matches: string; as: string };
    }>;
    const rule = rules.find((r) => r.name.as === hpa.spec.metrics[0].pods.metric.name);
    expect(rule).toBeDefined();
    expect(rule!.seriesQuery).toMatch(/^vllm:num_requests_waiting\{/);
    expect('vllm:num_requests_waiting').toMatch(new RegExp(rule!.name.matches));
  });
});

describe("the probes' answers, from the server itself", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.close());

  it('/health and /livez are 200 while serving; draining turns /health 503 and keeps /livez 200', async () => {
    const { container } = containerConfig(variants[0]![1]);
    const at = (probe: string) => `${server.url}${container[probe].httpGet.path}`;
    expect((await fetch(at('startupProbe'))).status).toBe(200);
    expect((await fetch(at('readinessProbe'))).status).toBe(200);
    expect((await fetch(at('livenessProbe'))).status).toBe(200);
    server.ctx.drain.start(10_000);
    expect((await fetch(at('readinessProbe'))).status).toBe(503);
    expect((await fetch(at('livenessProbe'))).status).toBe(200);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^vllm:num_requests_waiting\{model_name="stories260K"\} 0$/m);
  });
});

// The Dockerfile's entrypoint is what makes the args above a `kvserve serve` command line.
it('the image runs kvserve, so the args are its command line', () => {
  const dockerfile = readFileSync(join(dirname(deployDir), 'Dockerfile'), 'utf8');
  expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "dist\/cli\.js"\]$/m);
});
