import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_NAMES } from '../../src/cli/doctor/checks.js';
import { doctorReport, formatDoctorReport } from '../../src/cli/doctor/report.js';
import { parseConfig } from '../../src/contracts/config/load.js';
import type { Config } from '../../src/contracts/config/schema.js';
import type { DoctorCheck } from '../../src/contracts/doctor/check.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { SANDBOX_IMAGE } from '../../testkit/instance.js';
import { REDIS_URL } from '../../testkit/redis.js';

// Real Redis (testkit's REDIS_URL), the real Docker engine, and the fake Ollama.
const MODEL = 'qwen2.5:7b';
const docker = new Docker();
const probeImage = `sandbot-doctor-probe:${randomBytes(4).toString('hex')}`;
let fake: FakeOllama;

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function layerCheck(config: Config): Promise<DoctorCheck> {
  return byName((await doctorReport({ config, docker, redisUrl: REDIS_URL })).checks, CHECK_NAMES.layer);
}

function byName(checks: DoctorCheck[], name: string): DoctorCheck {
  const check = checks.find((c) => c.name === name);
  if (!check) throw new Error(`no "${name}" check in ${JSON.stringify(checks)}`);
  return check;
}

beforeAll(async () => {
  fake = await startFakeOllama({ models: [MODEL] });
  // The smallest image there is: an empty root filesystem (an empty tar is 1024 zero bytes).
  const progress = await docker.importImage(Readable.from([Buffer.alloc(1024)]), {
    repo: probeImage.split(':')[0],
    tag: probeImage.split(':')[1],
  });
  await new Promise((resolve, reject) =>
    docker.modem.followProgress(progress, (error) => (error ? reject(error) : resolve(undefined))),
  );
});

afterAll(async () => {
  await fake.close();
  await docker
    .getImage(probeImage)
    .remove({ force: true })
    .catch(() => {});
});

describe('sandbot doctor', () => {
  it('passes when Redis, the engine, the image, the layer, Ollama and the model are there', async () => {
    const config = parseConfig({
      SANDBOX_IMAGE,
      SANDBOX_RUNTIME: 'runc',
      OLLAMA_HOST: fake.url,
      SANDBOT_MODEL: MODEL,
    });
    const report = await doctorReport({ config, docker, redisUrl: REDIS_URL });

    expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
      [CHECK_NAMES.redis, true],
      [CHECK_NAMES.skills, true],
      [CHECK_NAMES.docker, true],
      [CHECK_NAMES.image, true],
      [CHECK_NAMES.layer, true],
      [CHECK_NAMES.disk, true],
      [CHECK_NAMES.ollama, true],
      [CHECK_NAMES.model, true],
    ]);
    expect(report.ok).toBe(true);
    expect(byName(report.checks, CHECK_NAMES.redis).detail).toMatch(
      /^PONG from redis:\/\/([^@]*@)?127\.0\.0\.1:6379/,
    );
    expect(byName(report.checks, CHECK_NAMES.skills).detail).toMatch(
      /^in the folder \/.*\/data\/skills \(\d+ skill version\(s\)\); several hosts must share this folder/,
    );
    expect(byName(report.checks, CHECK_NAMES.image).detail).toContain(SANDBOX_IMAGE);
    // The layer in force, and a container of the sandbox image really run under its runtime.
    expect(byName(report.checks, CHECK_NAMES.layer).detail).toMatch(
      new RegExp(
        `^container: every sandbox under runc; runc \\(.*\\) ran a container of ${SANDBOX_IMAGE} in `,
      ),
    );
    expect(report.text).toContain(`✓ ${CHECK_NAMES.model}: ${MODEL} is pulled`);
    expect(report.text.endsWith('All checks passed.')).toBe(true);
  });

  it('says what is missing and how to fix it', async () => {
    const redisPort = await closedPort();
    const config = parseConfig({
      SANDBOX_IMAGE: `sandbot-no-such-image:${randomBytes(4).toString('hex')}`,
      SANDBOX_RUNTIME: 'runsc-not-installed',
      OLLAMA_HOST: fake.url,
      SANDBOT_MODEL: 'llama3.2:1b',
    });
    const report = await doctorReport({ config, docker, redisUrl: `redis://127.0.0.1:${redisPort}` });
    expect(report.ok).toBe(false);

    const redis = byName(report.checks, CHECK_NAMES.redis);
    expect(redis).toMatchObject({
      ok: false,
      detail: `cannot reach Redis at redis://127.0.0.1:${redisPort}: connection refused`,
    });
    expect(redis.fix).toContain('SANDBOT_REDIS_URL');

    expect(byName(report.checks, CHECK_NAMES.docker).ok).toBe(true);
    const image = byName(report.checks, CHECK_NAMES.image);
    expect(image).toMatchObject({ ok: false, detail: `${config.SANDBOX_IMAGE} is not in the engine` });
    expect(image.fix).toContain('run `sandbot image build`');

    expect(byName(report.checks, CHECK_NAMES.layer)).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/^not checked: the sandbox image is missing/),
    });

    const model = byName(report.checks, CHECK_NAMES.model);
    expect(model).toMatchObject({
      ok: false,
      detail: 'model llama3.2:1b is not pulled: run `ollama pull llama3.2:1b`',
    });
    expect(model.fix).toBe(`run \`ollama pull llama3.2:1b\`, or set SANDBOT_MODEL to one of: ${MODEL}`);

    expect(report.text).toContain(
      `✗ ${CHECK_NAMES.image}: ${config.SANDBOX_IMAGE} is not in the engine\n    fix: run`,
    );
    expect(report.text.endsWith('4 of 8 checks failed.')).toBe(true);
  });

  it('names a runtime the engine lacks, and how to register it in daemon.json', async () => {
    const config = parseConfig({
      SANDBOX_IMAGE,
      SANDBOX_RUNTIME: 'runsc-not-installed',
      OLLAMA_HOST: fake.url,
    });
    const layer = await layerCheck(config);
    expect(layer.ok).toBe(false);
    expect(layer.detail).toMatch(
      /^gvisor: .*the engine has no runtime "runsc-not-installed" \(it has: .*runc/,
    );
    expect(layer.fix).toContain('/etc/docker/daemon.json');
    expect(layer.fix).toContain('apt-get install runsc');
  });

  it('runs a container of the sandbox image under gVisor for the gvisor layer', async () => {
    const layer = await layerCheck(
      parseConfig({ SANDBOX_IMAGE, SANDBOX_LAYER: 'gvisor', OLLAMA_HOST: fake.url }),
    );
    expect(layer).toMatchObject({
      ok: true,
      detail: expect.stringMatching(
        /^gvisor: every sandbox under runsc .*ran a container of .* under gVisor in /,
      ),
    });
  });

  it('refuses the micro-VM layer while no micro-VM engine is there', async () => {
    // An empty SANDBOT_VM_DIR: no guest built there, and the doctor says so (never the host's engine).
    const vmDir = mkdtempSync(join(tmpdir(), 'sandbot-novm-'));
    const layer = await layerCheck(
      parseConfig({ SANDBOX_IMAGE, SANDBOX_LAYER: 'microvm', OLLAMA_HOST: fake.url, SANDBOT_VM_DIR: vmDir }),
    );
    rmSync(vmDir, { recursive: true, force: true });
    expect(layer).toMatchObject({
      ok: false,
      detail: expect.stringContaining('the micro-VM guest is not built'),
    });
    expect(layer.fix).toContain('sandbot vm build');
  });

  it('reports an unreachable engine and Ollama, and skips what depends on them', async () => {
    const ollamaPort = await closedPort();
    const config = parseConfig({
      OLLAMA_HOST: `http://127.0.0.1:${ollamaPort}`,
      DOCKER_HOST: 'unix:///tmp/none.sock',
    });
    const nowhere = new Docker({ socketPath: `/tmp/sandbot-doctor-${randomBytes(4).toString('hex')}.sock` });
    const report = await doctorReport({ config, docker: nowhere, redisUrl: REDIS_URL });

    expect(byName(report.checks, CHECK_NAMES.redis).ok).toBe(true);
    const engine = byName(report.checks, CHECK_NAMES.docker);
    expect(engine).toMatchObject({
      ok: false,
      detail: 'cannot reach the container engine at unix:///tmp/none.sock: no such socket',
    });
    expect(engine.fix).toContain('DOCKER_HOST');
    expect(byName(report.checks, CHECK_NAMES.image).detail).toBe('not checked: the engine is unreachable');

    const ollama = byName(report.checks, CHECK_NAMES.ollama);
    expect(ollama.detail).toBe(`cannot reach Ollama at http://127.0.0.1:${ollamaPort}: connection refused`);
    expect(ollama.fix).toContain('OLLAMA_HOST');
    expect(byName(report.checks, CHECK_NAMES.model).detail).toMatch(/^not checked: Ollama is unreachable/);
  });

  it('does not hang on a server that never answers', async () => {
    // Accepts TCP connections and never says a word: Redis and Ollama both wait on it.
    const silent: Server = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    try {
      const config = parseConfig({ OLLAMA_HOST: `http://127.0.0.1:${port}`, SANDBOX_IMAGE: probeImage });
      const report = await doctorReport({
        config,
        docker,
        redisUrl: `redis://127.0.0.1:${port}`,
        timeoutMs: 500,
      });
      expect(byName(report.checks, CHECK_NAMES.redis).ok).toBe(false);
      expect(byName(report.checks, CHECK_NAMES.ollama)).toMatchObject({
        ok: false,
        detail: 'Ollama did not answer within 0.5 s',
      });
    } finally {
      silent.close();
    }
  });
});

describe('formatDoctorReport', () => {
  it('prints one line per check and the fix under each failure', () => {
    const text = formatDoctorReport([
      { name: 'Redis', ok: true, detail: 'PONG' },
      { name: 'Model', ok: false, detail: 'not pulled', fix: 'run `ollama pull m`' },
    ]);
    expect(text).toBe(
      '✓ Redis: PONG\n✗ Model: not pulled\n    fix: run `ollama pull m`\n\n1 of 2 checks failed.',
    );
  });
});
