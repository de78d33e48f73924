import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNTIME_COMMAND } from '../../sandbox/host/driver/docker-spec.js';
import {
  buildSandboxImage,
  imageExists,
  LOCAL_BASE_IMAGE,
  resolveBaseImage,
} from '../../sandbox/host/image/image.js';

const run = promisify(execFile);
const docker = new Docker();
const tag = `sandbot-sandbox:t-image-${randomBytes(3).toString('hex')}`;
const progress: string[] = [];

/** Runs a command in a throwaway container of the image, without network and with a read-only root. */
async function runIn(command: string): Promise<string> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const [result, container] = await docker.run(
    tag,
    ['sh', '-c', command],
    [out, new PassThrough().resume()],
    {
      Tty: false,
      HostConfig: { NetworkMode: 'none', ReadonlyRootfs: true },
    },
  );
  await container.remove({ force: true });
  expect(result.StatusCode).toBe(0);
  return Buffer.concat(chunks).toString('utf8');
}

beforeAll(async () => {
  await docker.ping();
  // Builds the registry-free base when it is missing (≈1 min), as CI and the setup script do.
  await run('bash', ['sandbox/base/build-base.sh'], { maxBuffer: 16 * 1024 * 1024 });
  await buildSandboxImage(docker, {
    tag,
    baseImage: await resolveBaseImage(docker),
    onProgress: (line) => progress.push(line),
  });
}, 240_000);

afterAll(async () => {
  await docker
    .getImage(tag)
    .remove({ force: true })
    .catch(() => undefined);
});

describe('the local base image script', () => {
  it('skips the build when the base image exists', async () => {
    expect(await imageExists(docker, LOCAL_BASE_IMAGE)).toBe(true);
    const { stdout } = await run('bash', ['sandbox/base/build-base.sh']);
    expect(stdout).toMatch(/already exists; skipping/);
  });

  it('refuses an unknown argument with a usage message', async () => {
    await expect(run('bash', ['sandbox/base/build-base.sh', '--bogus'])).rejects.toMatchObject({
      stderr: expect.stringMatching(/unknown argument: --bogus/),
    });
  });
});

describe('the sandbox image', () => {
  it('reports the builder progress and labels the image, running as uid 1000 in /workspace', async () => {
    expect(progress.some((line) => /Successfully tagged/.test(line))).toBe(true);
    const inspect = await docker.getImage(tag).inspect();
    expect(inspect.Config.Labels?.['sandbot.image']).toBe('sandbox');
    expect(inspect.Config.User).toBe('1000:1000');
    expect(inspect.Config.WorkingDir).toBe('/workspace');
    // The command every sandbox runs (with its settings appended: sandbox/host/driver/docker-spec.ts).
    expect(inspect.Config.Cmd).toEqual(RUNTIME_COMMAND);
  });

  it('has the tools the agent uses, and an agent user that owns only its own directories', async () => {
    const out = await runIn(
      [
        'for t in bash git python3 curl node; do command -v $t >/dev/null && echo have-$t; done',
        'test -s /etc/ssl/certs/ca-certificates.crt && echo have-certs',
        'id -un',
        'stat -c "%n %u %a" /workspace /session /opt/sandbot/dist/sandbox/runtime/main.js',
      ].join('; '),
    );
    for (const t of ['bash', 'git', 'python3', 'curl', 'node', 'certs']) expect(out).toContain(`have-${t}\n`);
    expect(out).toContain('agent\n');
    expect(out).toContain('/workspace 1000 700\n');
    expect(out).toContain('/session 1000 700\n');
    expect(out).toMatch(/main\.js 0 \d+\n/); // the runtime belongs to root: the agent cannot change it
  });

  it('ships only the runtime, bundled into one ES module with zod, and nothing else of sandbot’s', async () => {
    const out = await runIn(
      'cat /opt/sandbot/package.json; find /opt/sandbot -name "*.js" | sort; test -e /opt/sandbot/node_modules || echo no-node-modules; grep -c "ZodType" /opt/sandbot/dist/sandbox/runtime/main.js',
    );
    expect(JSON.parse(out.slice(0, out.indexOf('\n')))).toMatchObject({ type: 'module' });
    expect(out).toContain('\n/opt/sandbot/dist/sandbox/runtime/main.js\nno-node-modules\n');
    expect(out).toMatch(/^[1-9]\d*$/m); // zod is inside the bundle
    expect(out).not.toMatch(/dockerode|bullmq|ioredis/);
  });

  it('fails with the builder’s own message when the base image cannot be had', async () => {
    await expect(
      buildSandboxImage(docker, { tag: `${tag}-broken`, baseImage: 'sandbot-no-such-base:none' }),
    ).rejects.toThrow(/from sandbot-no-such-base:none failed: \S+/);
    expect(await imageExists(docker, `${tag}-broken`)).toBe(false);
  });
});
