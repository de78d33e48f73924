import { randomBytes } from 'node:crypto';
import formbody from '@fastify/formbody';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from '../../contracts/config/schema.js';
import { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { AuditLog } from '../../shared/audit/audit-log.js';
import type { ConversationControl } from '../../shared/queue/conversation-control.js';
import type { ConversationStore } from '../../shared/queue/conversation-store.js';
import type { ApprovalStore } from '../../shared/stores/approval-store.js';
import type { TaskStore } from '../../shared/stores/task-store.js';
import type { AdapterDeps } from '../chat-adapter.js';
import { type DoorSettings, guardDoor, tokenMatches } from '../http-auth.js';
import type { HttpServer } from '../http-server.js';
import { CONVERSATION_ACTIONS, decideApproval, parseAction, runAction } from './console-actions.js';
import { type ConsoleSources, readConversation, readOverview } from './console-data.js';
import {
  backTo,
  clearedCookie,
  consoleActor,
  contentSecurityPolicy,
  judgePost,
  operatorName,
  originAllowed,
  sessionCookie,
  sessionIdFrom,
} from './console-security.js';
import { type ConsoleSession, ConsoleSessions } from './console-sessions.js';
import { html } from './html.js';
import { loginPage, page } from './layout.js';
import { streamConversation } from './live-tail.js';
import { conversationBody, overviewBody } from './pages.js';
import { LIVE_TAIL_SCRIPT } from './timeline-view.js';

export interface ConsoleDeps {
  config: Pick<Config, 'SANDBOT_INSTANCE'> & DoorSettings;
  logger: Logger;
  redis: Redis;
  store: ConversationStore;
  control: ConversationControl;
  approvals: ApprovalStore;
  tasks: TaskStore;
  audit: AuditLog;
  submit: AdapterDeps['submit'];
}

/** Live tails open at once on one gateway (each holds a Redis connection). */
const MAX_STREAMS = 32;

/** What every console route uses: the sessions, the sources, and the page and refusal helpers. */
class ConsoleContext {
  readonly sessions: ConsoleSessions;
  readonly sources: ConsoleSources;
  readonly log: Logger;
  streams = 0;

  constructor(readonly deps: ConsoleDeps) {
    this.sessions = new ConsoleSessions(deps.redis, deps.config.SANDBOT_INSTANCE);
    this.sources = { ...deps, instance: deps.config.SANDBOT_INSTANCE, journal: deps.audit.journal };
    this.log = deps.logger.child({ component: 'console' });
  }

  sessionOf(request: FastifyRequest): Promise<ConsoleSession | undefined> {
    return this.sessions.get(sessionIdFrom(request.headers.cookie));
  }

  /** A page with the console's headers: a fresh CSP nonce, no framing, no caching. */
  show(reply: FastifyReply, status: number, render: (nonce: string) => string): FastifyReply {
    const nonce = randomBytes(16).toString('base64');
    return reply
      .code(status)
      .headers({
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': contentSecurityPolicy(nonce),
        'x-frame-options': 'DENY',
        'x-content-type-options': 'nosniff',
        // Not no-referrer: under it browsers send "Origin: null" on form posts, and the Origin check needs the real one.
        'referrer-policy': 'same-origin',
        'cache-control': 'no-store',
      })
      .send(render(nonce));
  }

  /** The checks every POST but sign-in passes first: the session when they pass (else refused). */
  async checkedPost(request: FastifyRequest, reply: FastifyReply): Promise<ConsoleSession | undefined> {
    const session = await this.sessionOf(request);
    const verdict = judgePost({
      session,
      origin: request.headers.origin,
      host: request.headers.host,
      csrf: formOf(request).csrf,
    });
    if (verdict.ok) return session;
    this.log.warn({ url: request.url, reason: verdict.reason }, 'console action refused');
    this.show(reply, verdict.status, (nonce) =>
      page({ title: 'Refused', nonce, body: htmlNote(verdict.reason) }),
    );
    return undefined;
  }

  /** After an action: the note for the next page, and back (303) to where the form came from. */
  async done(
    reply: FastifyReply,
    session: ConsoleSession,
    back: unknown,
    note: string,
  ): Promise<FastifyReply> {
    await this.sessions.setFlash(session.id, note);
    return reply.code(303).header('location', backTo(back)).send();
  }
}

const formOf = (request: FastifyRequest) => (request.body ?? {}) as Record<string, unknown>;
const operatorOf = (session: ConsoleSession) => ({ actor: consoleActor(session.name), name: session.name });

/**
 * The operator console at /console (registered only when SANDBOT_API_TOKEN is set): server-rendered
 * pages, a session cookie after signing in with the token, and every action a POST checked for its
 * session, Origin and CSRF token, recorded in the audit as admin:console:<name>.
 */
export function registerConsole(http: HttpServer, deps: ConsoleDeps): void {
  const ctx = new ConsoleContext(deps);
  void http.register(async (scope: FastifyInstance) => {
    // Form posts only here, in this plugin's scope: the JSON-only API elsewhere stays JSON-only.
    await scope.register(formbody, { bodyLimit: 16_384 });
    scope.addHook('onRequest', (request, reply) =>
      guardDoor(request, reply, deps.config, { tokenRequired: false }),
    );
    signInRoutes(scope, ctx);
    pageRoutes(scope, ctx);
    actionRoutes(scope, ctx);
  });
}

function signInRoutes(scope: FastifyInstance, ctx: ConsoleContext): void {
  const { sessions, log } = ctx;
  const token = ctx.deps.config.SANDBOT_API_TOKEN;
  scope.post('/console/login', async (request, reply) => {
    if (!originAllowed(request.headers.origin, request.headers.host)) {
      return ctx.show(reply, 403, (n) => loginPage(n, 'Refused: the form did not come from this console.'));
    }
    if (await sessions.blocked(request.ip)) {
      return ctx.show(reply, 429, (n) =>
        loginPage(n, 'Too many failed sign-ins: wait a quarter of an hour.'),
      );
    }
    const form = formOf(request);
    if (!token || !tokenMatches(typeof form.token === 'string' ? form.token : undefined, token)) {
      await sessions.noteFailure(request.ip);
      log.warn({ ip: request.ip }, 'console sign-in refused: wrong token');
      return ctx.show(reply, 401, (n) => loginPage(n, 'Wrong token.'));
    }
    const name = operatorName(form.name);
    if (!name)
      return ctx.show(reply, 400, (n) => loginPage(n, 'Give your name: it is recorded with every action.'));
    const session = await sessions.create(name);
    log.info({ operator: name }, 'console sign-in');
    return reply
      .code(303)
      .header('set-cookie', sessionCookie(session.id, request.protocol === 'https'))
      .header('location', '/console')
      .send();
  });

  scope.post('/console/logout', async (request, reply) => {
    const session = await ctx.checkedPost(request, reply);
    if (!session) return reply;
    await sessions.end(session.id);
    return reply
      .code(303)
      .header('set-cookie', clearedCookie(request.protocol === 'https'))
      .header('location', '/console')
      .send();
  });
}

function pageRoutes(scope: FastifyInstance, ctx: ConsoleContext): void {
  scope.get('/console', async (request, reply) => {
    const session = await ctx.sessionOf(request);
    if (!session) return ctx.show(reply, 200, (nonce) => loginPage(nonce));
    const [overview, flash] = await Promise.all([
      readOverview(ctx.sources),
      ctx.sessions.takeFlash(session.id),
    ]);
    const body = overviewBody(overview, { csrf: session.csrf, now: Date.now() });
    return ctx.show(reply, 200, (nonce) =>
      page({ title: 'Overview', nonce, operator: session, ...(flash ? { flash } : {}), body }),
    );
  });

  scope.get<{ Params: { id: string } }>('/console/conversations/:id', async (request, reply) => {
    const session = await ctx.sessionOf(request);
    if (!session) return reply.code(303).header('location', '/console').send();
    const conversation = ConversationId.safeParse(request.params.id);
    if (!conversation.success) {
      const body = htmlNote('No such conversation id.');
      return ctx.show(reply, 404, (nonce) => page({ title: 'Not found', nonce, operator: session, body }));
    }
    const [detail, flash] = await Promise.all([
      readConversation(ctx.sources, conversation.data),
      ctx.sessions.takeFlash(session.id),
    ]);
    const body = conversationBody(detail, { csrf: session.csrf, now: Date.now() });
    return ctx.show(reply, 200, (nonce) =>
      page({
        title: conversation.data,
        nonce,
        operator: session,
        ...(flash ? { flash } : {}),
        body,
        script: LIVE_TAIL_SCRIPT,
      }),
    );
  });

  scope.get<{ Params: { id: string }; Querystring: { after?: string } }>(
    '/console/conversations/:id/events',
    async (request, reply) => {
      const session = await ctx.sessionOf(request);
      const conversation = ConversationId.safeParse(request.params.id);
      if (!session) return reply.code(401).send({ error: 'not signed in' });
      if (!conversation.success) return reply.code(404).send({ error: 'no such conversation id' });
      if (ctx.streams >= MAX_STREAMS) return reply.code(503).send({ error: 'too many live tails open' });
      const after = Number(request.headers['last-event-id'] ?? request.query.after ?? 0);
      reply.hijack();
      ctx.streams += 1;
      try {
        await streamConversation(
          reply.raw,
          ctx.sources,
          conversation.data,
          Number.isFinite(after) ? after : 0,
        );
      } finally {
        ctx.streams -= 1;
      }
      return reply;
    },
  );
}

function actionRoutes(scope: FastifyInstance, ctx: ConsoleContext): void {
  scope.post<{ Params: { id: string; action: string } }>(
    '/console/conversations/:id/:action',
    async (request, reply) => {
      const session = await ctx.checkedPost(request, reply);
      if (!session) return reply;
      const conversation = ConversationId.safeParse(request.params.id);
      if (
        !conversation.success ||
        !(CONVERSATION_ACTIONS as readonly string[]).includes(request.params.action)
      ) {
        return reply.code(404).send({ error: 'no such conversation or action' });
      }
      const form = formOf(request);
      const action = parseAction(request.params.action, form);
      const note = await runAction(ctx.deps, conversation.data, action, operatorOf(session));
      ctx.log.warn(
        { audit: 'console', operator: session.name, conversation: conversation.data, action: action.kind },
        note,
      );
      return ctx.done(reply, session, form.back, note);
    },
  );

  scope.post<{ Params: { id: string } }>('/console/approvals/:id/decide', async (request, reply) => {
    const session = await ctx.checkedPost(request, reply);
    if (!session) return reply;
    const form = formOf(request);
    const note = await decideApproval(
      ctx.deps.approvals,
      request.params.id,
      form.decision,
      operatorOf(session),
    );
    ctx.log.warn({ audit: 'console', operator: session.name, approval: request.params.id }, note);
    return ctx.done(reply, session, form.back, note);
  });
}

function htmlNote(text: string) {
  return html`<section class="wide"><p class="reason" role="alert">${text}</p><p><a href="/console">Back to the console</a></p></section>`;
}
