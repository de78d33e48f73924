import type { Redis } from 'ioredis';
import { webConversationId } from '../src/contracts/conversation/id.js';
import { conversationKeys } from '../src/contracts/redis/keys.js';
import {
  type FakeChatRequest,
  type FakeOllama,
  type FakeStep,
  startFakeOllama,
} from '../testkit/fakes/fake-ollama.js';
import { rssBytes } from './machine.js';
import { mapLimit, until } from './stats.js';

/**
 * "Message → the agent sees it": from just before POST /api/messages to the moment the fake Ollama
 * gets the model request that carries the message (the runtime asks the model first thing). The model
 * answers at once, so what is measured is sandbot alone.
 */
export class MessageProbe {
  private next = 0;
  private readonly sent = new Map<string, number>();
  private readonly arrivals = new Map<string, { at?: number; wake?: (at: number) => void }>();
  private toolAnsweredAt: number | undefined;
  readonly toolSteps: number[] = [];

  private constructor(
    readonly ollama: FakeOllama,
    private readonly redis: Redis,
    private readonly instance: string,
  ) {}

  static async start(redis: Redis, instance: string): Promise<MessageProbe> {
    const ollama = await startFakeOllama();
    const probe = new MessageProbe(ollama, redis, instance);
    ollama.setScript((request) => probe.answer(request));
    return probe;
  }

  /** Answers every model request at once; a `[tool …]` message first gets one `bash true` call. */
  private answer(request: FakeChatRequest): FakeStep {
    const at = performance.now();
    const last = request.messages[request.messages.length - 1];
    if (last?.role === 'tool' && this.toolAnsweredAt !== undefined) {
      this.toolSteps.push(at - this.toolAnsweredAt);
      this.toolAnsweredAt = undefined;
    }
    const marker = last?.role === 'user' ? /\[(tool|msg) (\w+)\]/.exec(last.content) : null;
    if (!marker) return { reply: 'ok' };
    const slot = this.arrivals.get(marker[2] as string) ?? {};
    slot.at = at;
    slot.wake?.(at);
    this.arrivals.set(marker[2] as string, slot);
    if (marker[1] !== 'tool') return { reply: 'ok' };
    this.toolAnsweredAt = performance.now();
    return { toolCalls: [{ name: 'bash', arguments: { command: 'true' } }] };
  }

  private seenAt(id: string): Promise<number> {
    const slot = this.arrivals.get(id) ?? {};
    this.arrivals.set(id, slot);
    if (slot.at !== undefined) return Promise.resolve(slot.at);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`bench: message ${id} never reached the model`)),
        180_000,
      );
      slot.wake = (at) => {
        clearTimeout(timer);
        resolve(at);
      };
    });
  }

  /** Sends one message, waits until the model sees it and its turn is done; returns the latency. */
  async measure(url: string, session: string, kind: 'msg' | 'tool' = 'msg'): Promise<number> {
    const id = `m${this.next++}`;
    const seq = (this.sent.get(session) ?? 0) + 1;
    this.sent.set(session, seq);
    const seen = this.seenAt(id);
    const began = performance.now();
    const response = await fetch(`${url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ conversation: session, user: 'bench', text: `[${kind} ${id}] hello` }),
    });
    if (response.status !== 202) throw new Error(`bench: POST /api/messages answered ${response.status}`);
    const latency = (await seen) - began;
    await this.turnDone(session, seq);
    return latency;
  }

  /** Waits until the conversation's turns up to `seq` finished, so the next message starts a new turn. */
  private async turnDone(session: string, seq: number): Promise<void> {
    const key = conversationKeys(this.instance, webConversationId(session)).done;
    await until(
      `turn ${seq} of ${session} finishing`,
      async () => {
        const done = Number((await this.redis.get(key)) ?? '0');
        return done >= seq ? true : undefined;
      },
      180_000,
    );
  }

  close(): Promise<void> {
    return this.ollama.close();
  }
}

export interface ScalingRow {
  conversations: number;
  samples: number[];
  rss: number;
  /** Wall time of the level: messages / seconds is the turn throughput. */
  seconds: number;
}

export interface LatencyResults {
  cold: number[];
  coldBurst: number[];
  warm: number[];
  toolSteps: number[];
  scaling: ScalingRow[];
}

/** Rounds per lane at each level past one: enough samples for a p99 while keeping the run short. */
const LEVELS: [conversations: number, rounds: number][] = [
  [10, 5],
  [50, 2],
  [100, 1],
];

/** Sends `rounds` messages on each lane, all lanes at once, each lane waiting for its previous turn. */
async function closedLoop(
  probe: MessageProbe,
  url: string,
  lanes: string[],
  rounds: number,
): Promise<number[]> {
  const perLane = await mapLimit(lanes, lanes.length, async (lane) => {
    const samples: number[] = [];
    for (let r = 0; r < rounds; r++) samples.push(await probe.measure(url, lane));
    return samples;
  });
  return perLane.flat();
}

/** New conversations one after another (`lane-0` … `lane-9`), each a cold sandbox start. */
export async function measureCold(probe: MessageProbe, url: string, n = 10): Promise<number[]> {
  const cold: number[] = [];
  for (let i = 0; i < n; i++) cold.push(await probe.measure(url, `lane-${i}`));
  return cold;
}

/**
 * The quiet figures first (cold one at a time, warm, tool steps: one conversation busy at a time), then
 * 90 more new conversations at once, then 10, 50 and 100 of them busy at once.
 */
export async function measureLatencies(
  probe: MessageProbe,
  url: string,
  pid: number,
  log: (line: string) => void,
): Promise<LatencyResults> {
  const cold = await measureCold(probe, url);
  log(`  new conversation (cold), one at a time: ${cold.length} done`);
  let began = performance.now();
  const warm = await closedLoop(probe, url, ['lane-0'], 50);
  const warmSeconds = (performance.now() - began) / 1000;
  const scaling: ScalingRow[] = [
    { conversations: 1, samples: warm, rss: rssBytes(pid), seconds: warmSeconds },
  ];
  log(`  warm conversation: ${warm.length} messages`);
  for (let i = 0; i < 20; i++) await probe.measure(url, 'lane-1', 'tool');
  log(`  tool steps in real turns: ${probe.toolSteps.length}`);

  const lanes = Array.from({ length: 100 }, (_, i) => `lane-${i}`);
  const coldBurst = await mapLimit(lanes.slice(10), 90, (lane) => probe.measure(url, lane));
  log(`  ${coldBurst.length} new conversations at once: done`);

  for (const [conversations, rounds] of LEVELS) {
    began = performance.now();
    const samples = await closedLoop(probe, url, lanes.slice(0, conversations), rounds);
    scaling.push({ conversations, samples, rss: rssBytes(pid), seconds: (performance.now() - began) / 1000 });
    log(`  ${conversations} concurrent conversations: ${samples.length} messages`);
  }
  return { cold, coldBurst, warm, toolSteps: [...probe.toolSteps], scaling };
}
