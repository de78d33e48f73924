import type { IncomingMessage, RequestListener } from 'node:http';
import type { HttpServer } from '../../src/gateway/http-server.js';
import { EVENTS_PATH } from './bolt-app.js';

/** Slack's payloads are small; this bounds what an unauthenticated caller can make us buffer. */
const BODY_LIMIT = 1_048_576;

/**
 * Serves the Events API (events and slash commands) at POST /slack/events on the gateway's own HTTP
 * server. The raw body is kept as bytes (Slack signs the bytes) and handed, with the raw request and
 * response, to Bolt's HTTP receiver, which checks the signature and timestamp, acks, and dispatches.
 */
export function registerSlackEventsRoute(
  http: HttpServer,
  listener: RequestListener,
  ready: () => boolean,
): void {
  void http.register(async (scope) => {
    // Scoped to this plugin: the JSON-only parsers of the other routes stay as they are.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_request, body, done) =>
      done(null, body),
    );
    scope.post(EVENTS_PATH, async (request, reply) => {
      if (!ready()) {
        return reply.code(503).send({ error: 'the Slack adapter is not running' });
      }
      const raw = request.raw as IncomingMessage & { rawBody?: Buffer };
      // Bolt reads `rawBody` instead of the (already consumed) stream.
      raw.rawBody = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      reply.hijack();
      listener(raw, reply.raw);
      return reply;
    });
  });
}
