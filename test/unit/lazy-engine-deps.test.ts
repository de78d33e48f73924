import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

/** Runs `body` in a fresh node (own module cache) after installing the deferral; returns its stdout as JSON. */
async function inFreshNode(body: string): Promise<Record<string, unknown>> {
  const script = `
    import { createRequire } from 'node:module';
    import { deferUnusedEngineDeps } from './src/cli/lazy-engine-deps.ts';
    deferUnusedEngineDeps();
    const require = createRequire(import.meta.url);
    const loaded = (name) => Object.keys(require.cache).some((f) => f.includes('/node_modules/' + name + '/'));
    ${body}`;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    timeout: 30_000,
  });
  return JSON.parse(stdout);
}

describe('deferring dockerode’s unused parts (CLI start-up)', () => {
  it('loads dockerode without gRPC, protobufjs or ssh2, and still makes engine calls', async () => {
    const result = await inFreshNode(`
      const Docker = require('dockerode');
      const docker = new Docker({ socketPath: '/var/run/docker.sock' });
      const version = await docker.version();
      console.log(JSON.stringify({
        engine: typeof version.ApiVersion,
        grpc: loaded('@grpc/grpc-js'), protobuf: loaded('protobufjs'), ssh2: loaded('ssh2'),
      }));`);
    expect(result).toEqual({ engine: 'string', grpc: false, protobuf: false, ssh2: false });
  });

  it('loads the ssh transport on its first use and forwards to it', async () => {
    const result = await inFreshNode(`
      const Modem = require('docker-modem');
      const modem = new Modem({ protocol: 'ssh', host: 'sandbot-test.invalid', port: 22, username: 'nobody' });
      const before = loaded('ssh2');
      // No such host: the ssh agent the real module made reports the failure through the callback.
      const error = await new Promise((resolve) =>
        modem.dial({ path: '/_ping', method: 'GET', statusCodes: { 200: true } }, (err) => resolve(err)),
      );
      console.log(JSON.stringify({ before, after: loaded('ssh2'), failed: error instanceof Error }));`);
    expect(result).toEqual({ before: false, after: true, failed: true });
  });

  it('the deferred modules each export one function (what the stand-ins forward to)', async () => {
    const result = await inFreshNode(`
      const session = require(require.resolve('dockerode/lib/session.js'));
      const ssh = require(require.resolve('docker-modem/lib/ssh.js'));
      console.log(JSON.stringify({ session: typeof session, ssh: typeof ssh }));`);
    expect(result).toEqual({ session: 'function', ssh: 'function' });
  });
});
