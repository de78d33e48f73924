import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_TOKEN_REFUSAL } from '../../adapters/web/approval-routes.js';
import { WebEventStream } from '../../adapters/web/event-stream.js';
import { registerWebRoutes } from '../../adapters/web/http-routes.js';
import { formatSseEvent } from '../../adapters/web/sse.js';
import { ConfigSchema } from '../../src/contracts/config/schema.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { createHttpServer } from '../../src/gateway/http-server.js';
import { ApprovalStore } from '../../src/shared/stores/approval-store.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';

/**
 * The web route that decides approvals, on a real server and Redis: only the web API with its token is
 * an approver; without a configured token nobody on the web is (403, in words), and a refused request
 * changes nothing.
 */

const instance = testInstance('approvals-route');
const redis = new Redis(REDIS_URL);
const store = new ApprovalStore(redis, instance);
const logger = pino({ level: 'silent' });
const TOKEN = 'route-token-0123456789abcdef0123';
const servers: { close(): Promise<unknown> }[] = [];

async function startServer(env: Record<string, string>) {
  const config = ConfigSchema.parse({ SANDBOT_INSTANCE: instance, ...env });
  const app = createHttpServer({ config, logger, health: async () => ({ ok: true, checks: {} }) });
  const submitter = { submit: async () => undefined };
  registerWebRoutes(
    app,
    { submitter, events: new WebEventStream(redis, instance), approvals: store },
    { config, logger },
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  servers.push(app);
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

let open: string;
let guarded: string;
beforeAll(async () => {
  open = await startServer({});
  guarded = await startServer({ SANDBOT_API_TOKEN: TOKEN });
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await dropInstanceKeys(instance);
  redis.disconnect();
});

const pending = () =>
  store.create({
    conversation: webConversationId('route'),
    platform: 'web',
    route: {},
    kind: 'skill',
    target: 'pdf-tools',
    reason: 'read <b>the</b> pdf',
    turnId: 't1',
    timeoutSeconds: 60,
  });
const post = (base: string, id: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/api/approvals/${id}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
const auth = { authorization: `Bearer ${TOKEN}` };

describe('POST /api/approvals/:id', () => {
  it('refuses everyone on the web when no API token is configured, and changes nothing', async () => {
    const approval = await pending();
    const response = await post(open, approval.id, { decision: 'approve' });
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ error: NO_TOKEN_REFUSAL });
    expect((await store.get(approval.id))?.status).toBe('pending');
  });

  it('with the token: decides once as admin:web-api, naming who clicked; refuses bad input in words', async () => {
    const approval = await pending();
    expect((await post(guarded, approval.id, { decision: 'approve' })).status).toBe(401);
    const extra = await post(guarded, approval.id, { decision: 'approve', scope: 'all' }, auth);
    expect(extra.status).toBe(400);
    expect(((await extra.json()) as { error: string }).error).toContain('scope');
    expect((await post(guarded, 'not-an-id', { decision: 'deny' }, auth)).status).toBe(400);
    expect((await store.get(approval.id))?.status).toBe('pending');
    const decided = await post(guarded, approval.id, { decision: 'approve_hour', name: 'ana' }, auth);
    expect(decided.status).toBe(200);
    expect(((await decided.json()) as { approval: unknown }).approval).toMatchObject({
      status: 'approved',
      scope: 'hour',
      decidedBy: 'admin:web-api',
      decidedByName: 'ana (web)',
    });
    const again = await post(guarded, approval.id, { decision: 'deny' }, auth);
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: string }).error).toMatch(
      /^already ended: ✅ Approved for 1 hour by ana \(web\) at /,
    );
  });

  it('streams an approval with its card, the agent’s words as data, never markup', async () => {
    const approval = await pending();
    const line = formatSseEvent({
      id: '1-0',
      event: {
        id: `${approval.id}:pending`,
        conversation: approval.conversation,
        platform: 'web',
        route: {},
        type: 'approval',
        approval,
      },
    });
    const data = JSON.parse(line.split('\n')[1]?.slice('data: '.length) ?? '{}');
    expect(data.card.title).toBe('🔐 The agent asks to use the skill pdf-tools');
    expect(data.card.reason).toContain('“read <b>the</b> pdf”');
    expect(data.card.buttons.map((b: { decision: string }) => b.decision)).toEqual([
      'approve',
      'approve_hour',
      'deny',
    ]);
  });
});
