import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * sandbot's Prometheus metrics. One registry per process: in `sandbot up` the gateway serves what the
 * worker in the same process counts. Gauges that describe shared state (queue depth, live sandboxes)
 * are read at scrape time from sources the services register, one per instance.
 */

type Source = () => Promise<number>;

const SOURCE_TIMEOUT_MS = 2000;

function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'sandbot_' });
  const registers = [registry];
  const sources = { queueDepth: new Map<string, Source>(), liveSandboxes: new Map<string, Source>() };
  return {
    registry,
    // Each group registers its metrics as it is built: this order is the order /metrics lists them in.
    ...chatMetrics(registers),
    ...turnMetrics(registers, sources.queueDepth),
    ...sandboxMetrics(registers, sources.liveSandboxes),
    ...modelMetrics(registers),
    ...safetyMetrics(registers),
    /** Registers what a gauge reads for one instance; returns the way to unregister it. */
    source(gauge: keyof typeof sources, instance: string, read: Source): () => void {
      sources[gauge].set(instance, read);
      return () => {
        if (sources[gauge].get(instance) === read) sources[gauge].delete(instance);
      };
    },
  };
}

/** A gauge read at scrape time from the sources registered for each instance. */
function sourcedGauge(name: string, help: string, from: Map<string, Source>, registers: Registry[]) {
  return new Gauge({
    name,
    help,
    labelNames: ['instance'],
    registers,
    async collect() {
      this.reset();
      await Promise.all(
        [...from].map(async ([instance, read]) => {
          const value = await withTimeout(read()).catch(() => undefined);
          if (value !== undefined) this.set({ instance }, value);
        }),
      );
    },
  });
}

/** Messages in from chat and events out to it (the gateway's side). */
function chatMetrics(registers: Registry[]) {
  return {
    messagesIn: new Counter({
      name: 'sandbot_messages_in_total',
      help: 'Messages accepted into the inbound queue.',
      labelNames: ['platform', 'kind'],
      registers,
    }),
    messagesOut: new Counter({
      name: 'sandbot_messages_out_total',
      help: 'Events sent back to chat (progress, reply, error).',
      labelNames: ['platform', 'type'],
      registers,
    }),
  };
}

/** Turns and the queue in front of them. */
function turnMetrics(registers: Registry[], queueDepth: Map<string, Source>) {
  return {
    turnDuration: new Histogram({
      name: 'sandbot_turn_duration_seconds',
      help: 'Wall time of a turn, by outcome.',
      labelNames: ['mode', 'outcome'],
      buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers,
    }),
    queueWait: new Histogram({
      name: 'sandbot_queue_wait_seconds',
      help: 'Time from a message being received to its turn starting.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers,
    }),
    queueDepth: sourcedGauge(
      'sandbot_queue_depth',
      'Messages waiting for or in a turn, over all conversations.',
      queueDepth,
      registers,
    ),
  };
}

function sandboxMetrics(registers: Registry[], liveSandboxes: Map<string, Source>) {
  return {
    liveSandboxes: sourcedGauge(
      'sandbot_live_sandboxes',
      'Sandbox containers running now.',
      liveSandboxes,
      registers,
    ),
    sandboxStart: new Histogram({
      name: 'sandbot_sandbox_start_seconds',
      help: 'Time to have a sandbox running: cold = created, warm = a stopped one started.',
      labelNames: ['start'],
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers,
    }),
  };
}

/** Brokered model requests and the tool calls the model made. */
function modelMetrics(registers: Registry[]) {
  return {
    modelLatency: new Histogram({
      name: 'sandbot_model_request_seconds',
      help: 'Duration of a brokered model request.',
      labelNames: ['model', 'outcome'],
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    modelTokens: new Counter({
      name: 'sandbot_model_tokens_total',
      help: 'Tokens of brokered model requests, prompt and completion.',
      labelNames: ['model', 'direction'],
      registers,
    }),
    toolCalls: new Counter({
      name: 'sandbot_tool_calls_total',
      help: 'Tool calls the model made, by tool and result.',
      labelNames: ['tool', 'ok'],
      registers,
    }),
  };
}

/** Refusals, kills and audit failures. */
function safetyMetrics(registers: Registry[]) {
  return {
    refusals: new Counter({
      name: 'sandbot_refusals_total',
      help: 'Requests refused (access, rate limits, network policy), by reason.',
      labelNames: ['reason'],
      registers,
    }),
    kills: new Counter({
      name: 'sandbot_kills_total',
      help: 'Sandboxes killed (by an operator or a tripwire), by reason.',
      labelNames: ['reason'],
      registers,
    }),
    auditFailures: new Counter({
      name: 'sandbot_audit_failures_total',
      help: 'Audit events that could not be queued or written, by stage.',
      labelNames: ['stage'],
      registers,
    }),
    approvals: new Counter({
      name: 'sandbot_approvals_total',
      help: 'Approval requests (request_access) that ended, by kind and outcome (approved, denied, expired).',
      labelNames: ['kind', 'outcome'],
      registers,
    }),
  };
}

export type SandbotMetrics = ReturnType<typeof createMetrics>;

let metrics: SandbotMetrics | undefined;

/** The process's metrics, created on first use. */
export function sandbotMetrics(): SandbotMetrics {
  metrics ??= createMetrics();
  return metrics;
}

function withTimeout<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('metric source too slow')), SOURCE_TIMEOUT_MS);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
