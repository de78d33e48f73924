import { Duplex } from 'node:stream';
import Docker from 'dockerode';
import { AttachedSession } from '../../sandbox/host/driver/docker-session.js';
import type { ConversationId } from '../../src/contracts/conversation/id.js';
import type { Logger } from '../../src/contracts/log/logger.js';

const modem = new Docker().modem; // no connection is made: only its demuxer is used

/**
 * An AttachedSession on a fake attach socket: what the engine would send is pushed in (`stdout` frames
 * it as the engine's multiplexed stream does), what the session writes is recorded in `written`.
 */
export function fakeAttachedSession(
  conversation: ConversationId,
  options: { maxLineBytes: number; logger?: Logger; bufferBytes?: number },
) {
  const written: string[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      written.push(chunk.toString());
      done();
    },
  });
  const session = new AttachedSession(
    conversation,
    socket,
    (s, out, err) => modem.demuxStream(s, out, err),
    options.maxLineBytes,
    options.logger,
    '',
    options.bufferBytes,
  );
  const stdout = (payload: string | Buffer) => {
    const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
    const header = Buffer.alloc(8);
    header.writeUInt8(1, 0);
    header.writeUInt32BE(body.length, 4);
    socket.push(Buffer.concat([header, body]));
  };
  return { socket, session, written, stdout };
}
