import { z } from 'zod';

/**
 * The egress tunnel: for layers whose sandboxes have no network device (gVisor registered with
 * --network=none, the micro-VM's closed network), a granted sandbox reaches the egress proxy through
 * its own protocol stream. The runtime listens on the sandbox's loopback (EGRESS_TUNNEL_PORT), and
 * every connection a tool opens there becomes a stream of these frames; the worker connects each
 * stream to the proxy, which still checks the sandbox's credentials and grants. Frames carry no turn
 * id: a stream lives as long as the worker's lease on the sandbox (one turn or one /run).
 */

/** The port the runtime listens on inside a tunnelled sandbox (its HTTP_PROXY names it; `--egress-port`). */
export const EGRESS_TUNNEL_PORT = 3128;
/** Bytes of one data frame before base64: small enough for any protocol line cap of 32 KiB or more. */
export const EGRESS_CHUNK_BYTES = 16 * 1024;
/**
 * Bytes one side may send on a stream before the other acknowledges them (egress_ack, sent once they
 * are written on): neither end buffers more than this per stream, whatever the other does. A side that
 * sends past it has its stream closed.
 */
export const EGRESS_WINDOW_BYTES = 256 * 1024;
/** Streams one sandbox may have open at once; more are closed at once with a reason. */
export const EGRESS_MAX_STREAMS = 32;
/** Streams one lease (a turn, a /run) may open in all: a bound on connection churn against the proxy. */
export const EGRESS_MAX_OPENS_PER_LEASE = 5000;
/** How the worker's tunnel end reports a frame no honest runtime sends, as a bad line of the turn's. */
export const INVALID_EGRESS_FRAME = 'invalid egress frame';

const stream = z
  .number()
  .int()
  .min(1)
  .max(2 ** 31);

/** runtime → worker: a tool connected to the tunnel port. */
/**
 * `skill`: the connection came from the tools of that skill of the turn (the runtime tells by the
 * connecting socket's uid, SKILL_UID_BASE + its index in the turn's skillAccess); the proxy then adds
 * that skill's hosts to the conversation's, while the skill is enabled (no credential of the skill's
 * is ever in the sandbox, whose processes' environments gVisor lets every uid read).
 */
export const EgressOpen = z.object({
  type: z.literal('egress_open'),
  stream,
  skill: z
    .string()
    .regex(/^[a-z][a-z0-9-]{1,39}$/)
    .optional(),
});
/** Either way: bytes of one stream, base64. */
export const EgressData = z.object({
  type: z.literal('egress_data'),
  stream,
  data: z.base64().max(Math.ceil(EGRESS_CHUNK_BYTES / 3) * 4),
});
/** Either way: `bytes` of the stream's data were written on (the sender may send that many more). */
export const EgressAck = z.object({
  type: z.literal('egress_ack'),
  stream,
  bytes: z.number().int().min(1).max(EGRESS_WINDOW_BYTES),
});
/** Either way: the sender will send no more bytes on the stream (its side half-closed: TCP FIN). */
export const EgressEnd = z.object({ type: z.literal('egress_end'), stream });
/** Either way: the stream is over (both sides done, an error, or a refusal said in `reason`). */
export const EgressClose = z.object({
  type: z.literal('egress_close'),
  stream,
  reason: z.string().max(300).optional(),
});
export type EgressOpen = z.infer<typeof EgressOpen>;
export type EgressData = z.infer<typeof EgressData>;
export type EgressAck = z.infer<typeof EgressAck>;
export type EgressEnd = z.infer<typeof EgressEnd>;
export type EgressClose = z.infer<typeof EgressClose>;
/** What either side sends about a stream once it is open. */
export type EgressStreamFrame = EgressData | EgressAck | EgressEnd | EgressClose;
export type EgressFrame = EgressOpen | EgressStreamFrame;

/** Splits bytes into data frames of at most EGRESS_CHUNK_BYTES each. */
export function dataFrames(streamId: number, bytes: Buffer): EgressData[] {
  const frames: EgressData[] = [];
  for (let at = 0; at < bytes.length; at += EGRESS_CHUNK_BYTES) {
    frames.push({
      type: 'egress_data',
      stream: streamId,
      data: bytes.subarray(at, at + EGRESS_CHUNK_BYTES).toString('base64'),
    });
  }
  return frames;
}
