import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ConfigSchema } from '../../src/contracts/config/schema.js';
import { exposureProblem } from '../../src/gateway/start-checks.js';

// The deployment files (deploy/) are checked against their schemas here, as no cluster runs in CI:
// Compose files by dclint (the Compose Specification's JSON schema), Kubernetes objects by
// kubernetes-models (the API's OpenAPI schemas), and every sandbot setting they set by our own schema.

const run = promisify(execFile);
const COMPOSE = ['deploy/compose.yaml', 'deploy/compose.worker.yaml'];
const K8S_DIR = 'deploy/kubernetes';
const SETTINGS = new Set(Object.keys(ConfigSchema.shape));
/** Variables of the images sandbot does not build (Redis, PostgreSQL). */
const OTHER_IMAGES = /^(redis|postgres):/;

type Doc = Record<string, unknown>;
const k8sFiles = readdirSync(K8S_DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
const k8sDocs: { file: string; doc: Doc }[] = k8sFiles.flatMap((file) =>
  parseAllDocuments(readFileSync(join(K8S_DIR, file), 'utf8')).map((d) => ({ file, doc: d.toJS() as Doc })),
);

async function modelFor(apiVersion: string, kind: string) {
  const modules: Record<string, () => Promise<Record<string, unknown>>> = {
    v1: () => import('kubernetes-models/v1'),
    'apps/v1': () => import('kubernetes-models/apps/v1'),
    'batch/v1': () => import('kubernetes-models/batch/v1'),
  };
  const load = modules[apiVersion];
  if (!load) throw new Error(`no schema for apiVersion ${apiVersion}`);
  const model = (await load())[kind] as (new (data: Doc) => { validate(): void }) | undefined;
  if (!model) throw new Error(`no schema for ${apiVersion} ${kind}`);
  return model;
}

function podContainers(doc: Doc): { image: string; env: { name: string; value?: string }[] }[] {
  const spec = doc.spec as Doc | undefined;
  const template = (spec?.template ?? (spec?.jobTemplate as Doc | undefined)) as Doc | undefined;
  const pod = template?.spec as Doc | undefined;
  return (
    (pod?.containers as { image: string; env?: { name: string; value?: string }[] }[] | undefined)?.map(
      (c) => ({ image: c.image, env: c.env ?? [] }),
    ) ?? []
  );
}

describe('deploy/ compose files', () => {
  it('are valid Compose files (dclint: schema and errors)', async () => {
    const { stdout } = await run('node_modules/.bin/dclint', ['-q', '-f', 'json', ...COMPOSE]);
    expect(JSON.parse(stdout)).toEqual([]);
  });

  it('dclint does fail a file that breaks the schema (the check above can fail)', async () => {
    const failed = await run('node_modules/.bin/dclint', [
      '-q',
      '-f',
      'json',
      'test/fixtures/bad-compose.yaml',
    ]).then(
      () => false,
      (error: { stdout: string }) => JSON.parse(error.stdout)[0].errorCount > 0,
    );
    expect(failed).toBe(true);
  });

  it('set only settings sandbot knows, on sandbot services', () => {
    for (const file of COMPOSE) {
      const compose = parseAllDocuments(readFileSync(file, 'utf8'))[0]?.toJS({ maxAliasCount: 100 }) as Doc;
      const services = compose.services as Record<string, Doc>;
      for (const [name, service] of Object.entries(services)) {
        if (OTHER_IMAGES.test(String(service.image ?? ''))) continue;
        const unknown = Object.keys((service.environment as Doc | undefined) ?? {}).filter(
          (k) => !SETTINGS.has(k),
        );
        expect(unknown, `${file} ${name}`).toEqual([]);
      }
    }
  });

  it('the one-machine file has Redis with a password and persistence, PostgreSQL, a gateway and a worker', () => {
    const compose = parseAllDocuments(readFileSync(COMPOSE[0] as string, 'utf8'))[0]?.toJS({
      maxAliasCount: 100,
    }) as { services: Record<string, Doc> };
    expect(Object.keys(compose.services).sort()).toEqual([
      'gateway',
      'postgres',
      'redis',
      'sandbox-image',
      'worker',
    ]);
    expect(compose.services.redis?.command).toEqual(
      expect.arrayContaining(['--appendonly', '--requirepass']),
    );
    expect(compose.services.gateway?.command).toEqual(['gateway']);
    expect(compose.services.worker?.command).toEqual(['worker']);
  });
});

describe('deploy/kubernetes', () => {
  it('every object validates against the Kubernetes API schema', async () => {
    expect(k8sDocs.length).toBeGreaterThanOrEqual(10);
    for (const { file, doc } of k8sDocs) {
      const Model = await modelFor(String(doc.apiVersion), String(doc.kind));
      expect(() => new Model(doc).validate(), `${file} ${doc.kind}`).not.toThrow();
    }
  });

  it('the schema check catches a broken object', async () => {
    const Model = await modelFor('apps/v1', 'Deployment');
    const broken = {
      metadata: { name: 'x' },
      spec: {
        selector: {},
        template: { spec: { containers: [{ name: 'a', ports: [{ containerPort: 'http' }] }] } },
      },
    };
    expect(() => new Model(broken).validate()).toThrow(/containerPort/);
  });

  it('the kustomization lists every manifest', () => {
    const kustomization = parseAllDocuments(
      readFileSync(join(K8S_DIR, 'kustomization.yaml'), 'utf8'),
    )[0]?.toJS() as {
      resources: string[];
    };
    expect([...kustomization.resources].sort()).toEqual([...k8sFiles].sort());
  });

  it('runs a gateway Deployment, a worker DaemonSet, Redis and PostgreSQL', () => {
    const kinds = k8sDocs.map(({ doc }) => `${doc.kind}/${(doc.metadata as Doc).name}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'Deployment/sandbot-gateway',
        'DaemonSet/sandbot-worker',
        'StatefulSet/redis',
        'StatefulSet/postgres',
      ]),
    );
  });

  it('sandbot containers set only settings sandbot knows', () => {
    for (const { file, doc } of k8sDocs) {
      for (const container of podContainers(doc)) {
        if (OTHER_IMAGES.test(container.image)) continue;
        const unknown = container.env.map((e) => e.name).filter((n) => !SETTINGS.has(n));
        expect(unknown, file).toEqual([]);
      }
    }
  });

  it("the secret's API token is a placeholder the gateway refuses", () => {
    const secret = k8sDocs.find(({ doc }) => doc.kind === 'Secret')?.doc as {
      stringData: Record<string, string>;
    };
    const token = secret.stringData.SANDBOT_API_TOKEN;
    expect(exposureProblem({ SANDBOT_HTTP_HOST: '0.0.0.0', SANDBOT_API_TOKEN: token })).toMatch(
      /placeholder/,
    );
  });
});
