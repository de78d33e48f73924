import type { Duplex } from 'node:stream';
import type { RuntimeToWorker } from '../../../src/contracts/protocol/agent.js';
import {
  EGRESS_MAX_OPENS_PER_LEASE,
  EGRESS_MAX_STREAMS,
  type EgressFrame,
  type EgressStreamFrame,
  INVALID_EGRESS_FRAME,
} from '../../../src/contracts/protocol/egress.js';
import { EgressStreams } from '../../../src/contracts/protocol/egress-streams.js';
import type { SandboxSession } from './types.js';

const isEgressFrame = (message: RuntimeToWorker): message is Extract<RuntimeToWorker, EgressFrame> =>
  message.type.startsWith('egress_');

/**
 * The worker's end of the egress tunnel (src/contracts/protocol/egress.ts): wraps one lease on a sandbox's
 * protocol stream, connects each stream the sandbox opens to the egress proxy (`connect`), and passes
 * every other line on to the session's listeners, so a turn never sees a tunnel frame. Streams end
 * with the lease. The proxy checks each request's credentials and grants: this decides nothing but
 * how many streams one sandbox may hold at once.
 */
export function withEgressTunnel(
  session: SandboxSession,
  connect: (from?: { skill?: string }) => Duplex,
): SandboxSession {
  const listeners = new Set<Parameters<SandboxSession['onMessage']>[0]>();
  const send = (frame: EgressStreamFrame) => {
    try {
      session.send(frame);
    } catch {
      // The sandbox is gone: its streams end with the lease.
    }
  };
  // Proxy connections are read only as fast as the sandbox's stdin drains (EgressStreams' flow).
  // A frame no honest runtime sends goes to the turn as a bad line: it counts toward its tripwire.
  const streams = new EgressStreams(
    send,
    session.blocked && session.onDrain
      ? { blocked: () => session.blocked?.() ?? false, onDrain: (listener) => session.onDrain?.(listener) }
      : undefined,
    (reason) => {
      for (const listener of listeners) listener({ ok: false, error: `${INVALID_EGRESS_FRAME}: ${reason}` });
    },
  );
  let opens = 0;

  const open = (stream: number, skill: string | undefined) => {
    if (streams.has(stream))
      return send({ type: 'egress_close', stream, reason: 'stream id already in use' });
    if (streams.size >= EGRESS_MAX_STREAMS)
      return streams.decline(stream, `over ${EGRESS_MAX_STREAMS} connections open at once`);
    opens += 1;
    if (opens > EGRESS_MAX_OPENS_PER_LEASE)
      return streams.decline(stream, `over ${EGRESS_MAX_OPENS_PER_LEASE} connections in one turn`);
    streams.add(stream, connect(skill ? { skill } : undefined));
  };

  const unsubscribe = session.onMessage((line) => {
    if (!line.ok || !isEgressFrame(line.value)) {
      for (const listener of listeners) listener(line);
      return;
    }
    const frame = line.value;
    if (frame.type === 'egress_open') open(frame.stream, frame.skill);
    else streams.receive(frame);
  });

  return {
    conversation: session.conversation,
    containerId: session.containerId,
    ...(session.fresh ? { fresh: true } : {}),
    send: (message) => session.send(message),
    ...(session.betweenTurns
      ? { betweenTurns: () => session.betweenTurns?.() ?? { lines: 0, bytes: 0 } }
      : {}),
    ...(session.blocked ? { blocked: () => session.blocked?.() ?? false } : {}),
    ...(session.onDrain
      ? { onDrain: (listener: () => void) => session.onDrain?.(listener) ?? (() => undefined) }
      : {}),
    onMessage(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onClose(listener) {
      return session.onClose((reason) => {
        streams.closeAll();
        listener(reason);
      });
    },
    async close() {
      streams.closeAll();
      unsubscribe();
      await session.close();
    },
  };
}
