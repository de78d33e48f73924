import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeChatRequest, type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { freePort } from '../../testkit/ports.js';
import { testInstance } from '../../testkit/redis.js';
import { openSse, postMessage, type SseClient } from '../helpers/sse.js';
import { testConfig } from '../helpers/stack.js';
import { WorkerProcesses } from '../helpers/worker-process.js';

/**
 * The soak: 10,000 messages over 200 web conversations through a gateway process and a worker process
 * (the built CLI), each conversation in its own sandbox. Every message must be answered exactly once;
 * the two processes' memory is sampled throughout and must stay flat. The figures are printed.
 */

const MESSAGES = Number(process.env.SOAK_MESSAGES ?? 10_000);
const CONVERSATIONS = Number(process.env.SOAK_CONVERSATIONS ?? 200);
const IN_FLIGHT = 50;

let ollama: FakeOllama;
let config: ReturnType<typeof testConfig>;
let processes: WorkerProcesses;
let gatewayUrl: string;
const pids: { gateway?: number; worker?: number } = {};

/** The user messages the turn carried: those after the last assistant message. */
function turnMessages(request: FakeChatRequest): string[] {
  const lastAnswer = request.messages.map((m) => m.role).lastIndexOf('assistant');
  return request.messages
    .slice(lastAnswer + 1)
    .filter((m) => m.role === 'user')
    .map((m) => m.content.replace(/^[^:]*: /, ''));
}

function rssMb(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
}

async function untilHealthy(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error('the gateway exited');
    const ok = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the gateway did not become healthy');
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

beforeAll(async () => {
  ollama = await startFakeOllama({
    models: ['qwen2.5:7b'],
    script: (request) => ({ reply: `answer to [${turnMessages(request).join('|')}]` }),
  });
  const port = await freePort();
  config = testConfig(testInstance('soak'), {
    OLLAMA_HOST: ollama.url,
    SANDBOT_HTTP_PORT: String(port),
    SANDBOT_WORKER_CONCURRENCY: '8',
    SANDBOX_MAX_LIVE: String(CONVERSATIONS + 20),
    // Load from a few test users, not people: the per-person limits would refuse most of it.
    SANDBOT_USER_MESSAGES_PER_MINUTE: '0',
    SANDBOT_USER_CONVERSATIONS_PER_HOUR: '0',
  });
  processes = new WorkerProcesses(config);
  gatewayUrl = `http://127.0.0.1:${port}`;
  const gateway = processes.spawn('gateway');
  await untilHealthy(gatewayUrl, gateway);
  pids.gateway = gateway.pid;
  pids.worker = processes.spawn('worker').pid;
}, 60_000);

afterAll(async () => {
  processes?.killAll();
  await ollama?.close();
  if (config) await cleanInstance(config);
}, 300_000);

describe('soak', () => {
  it(`answers ${MESSAGES} messages over ${CONVERSATIONS} conversations, memory flat`, {
    timeout: 900_000,
  }, async () => {
    const names = Array.from({ length: CONVERSATIONS }, (_, i) => `soak-${i}`);
    const streams = new Map<string, SseClient>();
    for (const name of names)
      streams.set(name, await openSse(`${gatewayUrl}/api/conversations/${name}/events`));
    const answered = () =>
      [...streams.values()]
        .flatMap((s) => s.events)
        .flatMap((e) => (e.type === 'reply' ? (/\[(.*)\]/.exec(e.text)?.[1] ?? '').split('|') : []));
    const samples: { answered: number; gateway: number; worker: number }[] = [];
    const sampler = setInterval(() => {
      samples.push({ answered: answered().length, gateway: rssMb(pids.gateway), worker: rssMb(pids.worker) });
    }, 1000);
    const began = performance.now();
    try {
      const sent: string[] = [];
      let next = 0;
      const sender = async () => {
        while (next < MESSAGES) {
          const n = next++;
          const text = `m${n}`;
          sent.push(text);
          await postMessage(gatewayUrl, names[n % CONVERSATIONS] ?? 'soak-0', text);
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, sender));
      await expect
        .poll(() => answered().length, { timeout: 840_000, interval: 1000 })
        .toBeGreaterThanOrEqual(MESSAGES);
      // A moment more, to catch a reply sent twice.
      await new Promise((r) => setTimeout(r, 2000));
      const all = answered();
      expect(all.length).toBe(MESSAGES);
      expect([...all].sort()).toEqual([...sent].sort());
      expect([...streams.values()].flatMap((s) => s.events).filter((e) => e.type === 'error')).toEqual([]);
    } finally {
      clearInterval(sampler);
      for (const s of streams.values()) s.close();
    }

    // Memory: the quarter of the run after warm-up against the last quarter.
    const quarter = (from: number, to: number) =>
      samples.filter((s) => s.answered >= MESSAGES * from && s.answered <= MESSAGES * to);
    const early = quarter(0.2, 0.45);
    const late = quarter(0.75, 1);
    const figures = {
      seconds: Math.round((performance.now() - began) / 1000),
      turns: ollama.chatRequests().length,
      gatewayEarlyMb: Math.round(median(early.map((s) => s.gateway))),
      gatewayLateMb: Math.round(median(late.map((s) => s.gateway))),
      gatewayPeakMb: Math.round(Math.max(...samples.map((s) => s.gateway))),
      workerEarlyMb: Math.round(median(early.map((s) => s.worker))),
      workerLateMb: Math.round(median(late.map((s) => s.worker))),
      workerPeakMb: Math.round(Math.max(...samples.map((s) => s.worker))),
    };
    console.log(`soak: ${JSON.stringify(figures)}`);
    expect(early.length).toBeGreaterThan(0);
    expect(late.length).toBeGreaterThan(0);
    // Flat: what the processes hold late in the run is within half again of what they held early on.
    expect(figures.gatewayLateMb).toBeLessThan(figures.gatewayEarlyMb * 1.5);
    expect(figures.workerLateMb).toBeLessThan(figures.workerEarlyMb * 1.5);
  });
});
