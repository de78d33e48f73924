import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseConfig } from '../src/contracts/config/load.js';
import { type FakeChatRequest, type FakeStep, startFakeOllama } from '../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../testkit/instance.js';
import { replyStream } from './reply-stream.js';
import { latency, median, until } from './stats.js';
import { benchSettings, freePort } from './system.js';

/**
 * `npm run bench:reply`: message → reply, as a web chat user sees it (POST /api/messages until the
 * reply event arrives on the conversation's event stream), for warm turns without and with a tool call.
 * Only the HTTP API is used, so the same run measures another checkout too: SANDBOT_BENCH_BASELINE=DIR
 * (built with `npm run build`; its sandbox image in SANDBOT_BENCH_BASELINE_IMAGE) is measured first, with
 * its own defaults, and the table gives both.
 */
const TURNS = Number(process.env.SANDBOT_BENCH_TURNS ?? 30);
/** A person takes longer than this to answer; the turn's bookkeeping after its reply is done by then. */
const THINK_MS = 250;
const RESULTS_FILE = new URL('../../bench/REPLY.md', import.meta.url).pathname;

const KINDS = ['plain', 'tool', 'plain, back to back', 'tool, back to back'] as const;
type Kind = (typeof KINDS)[number];
const LABELS: Record<Kind, string> = {
  plain: `reply, no tool (sent ${THINK_MS} ms after the last reply)`,
  tool: `reply after one bash tool call (sent ${THINK_MS} ms after the last reply)`,
  'plain, back to back': 'reply, no tool, sent the moment the last reply came',
  'tool, back to back': 'reply after one bash tool call, sent the moment the last reply came',
};

function script(request: FakeChatRequest): FakeStep {
  const last = request.messages.at(-1);
  if (last?.role === 'user' && last.content.includes('[tool]')) {
    return { toolCalls: [{ name: 'bash', arguments: { command: 'echo hi > /workspace/out.txt' } }] };
  }
  return { reply: 'ok' };
}

async function measure(checkout: string, label: string, image?: string): Promise<Record<Kind, number[]>> {
  const instance = `bench-reply-${randomBytes(3).toString('hex')}`;
  const ollama = await startFakeOllama({ script });
  const auditDir = mkdtempSync(join(tmpdir(), 'sandbot-bench-audit-'));
  const port = await freePort();
  const settings = {
    ...benchSettings({ instance, ollamaUrl: ollama.url, auditDir }),
    SANDBOT_HTTP_PORT: String(port),
    ...(image ? { SANDBOX_IMAGE: image } : {}),
  };
  const child = spawn(process.execPath, [join(checkout, 'dist/src/cli/main.js'), 'up'], {
    cwd: checkout,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...settings },
    stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  const abort = new AbortController();
  const result = Object.fromEntries(KINDS.map((kind) => [kind, [] as number[]])) as Record<Kind, number[]>;
  try {
    await until(
      `${label}: sandbot up`,
      async () => ((await fetch(`${url}/healthz`).catch(() => undefined))?.ok ? true : undefined),
      60_000,
    );
    const conversation = `reply-${label}`;
    const events = await replyStream(url, conversation, abort.signal);
    const send = async (text: string) => {
      const began = performance.now();
      const answered = events.next();
      const response = await fetch(`${url}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ conversation, user: 'bench', text }),
      });
      if (response.status !== 202)
        throw new Error(`${label}: POST /api/messages answered ${response.status}`);
      await answered;
      return performance.now() - began;
    };
    await send('warm up [tool]'); // the cold start is not what is measured
    const pause = () => new Promise((done) => setTimeout(done, THINK_MS));
    for (let i = 0; i < TURNS; i++) {
      await pause();
      result.plain.push(await send(`plain ${i}`));
      // Back to back: the next message comes the moment the reply is shown.
      result['plain, back to back'].push(await send(`plain next ${i}`));
      await pause();
      result.tool.push(await send(`tool ${i} [tool]`));
      result['tool, back to back'].push(await send(`tool next ${i} [tool]`));
    }
  } finally {
    abort.abort();
    child.kill('SIGTERM');
    await new Promise((done) => child.once('exit', done));
    await ollama.close();
    await cleanInstance(parseConfig(settings));
    rmSync(auditDir, { recursive: true, force: true });
  }
  return result;
}

async function main(): Promise<void> {
  const current = resolve(new URL('../..', import.meta.url).pathname);
  const baselineDir = process.env.SANDBOT_BENCH_BASELINE;
  const rows: string[] = [];
  const baselineImage = process.env.SANDBOT_BENCH_BASELINE_IMAGE;
  const baseline = baselineDir ? await measure(resolve(baselineDir), 'baseline', baselineImage) : undefined;
  const now = await measure(current, 'current');
  for (const kind of KINDS) {
    const vs = baseline
      ? ` | ${latency(baseline[kind])} | ${(median(now[kind]) / median(baseline[kind])).toFixed(2)}×`
      : '';
    rows.push(`| ${LABELS[kind]} | ${latency(now[kind])}${vs} |`);
  }
  const header = baseline
    ? '| warm turn | this checkout | baseline | median, this / baseline |\n|---|---|---|---|'
    : '| warm turn | this checkout |\n|---|---|';
  const text = `# Message → reply (\`npm run bench:reply\`)\n\nOne run, ${TURNS} turns of each kind in one warm conversation, web API and event stream, fake model answering at once${baselineDir ? `; baseline: ${baselineDir}` : ''}.\n\n${header}\n${rows.join('\n')}\n`;
  console.log(text);
  writeFileSync(RESULTS_FILE, text);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
