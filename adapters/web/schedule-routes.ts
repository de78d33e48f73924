import type { FastifyInstance, FastifyReply } from 'fastify';
import { WebSessionName, webConversationId } from '../../src/contracts/conversation/id.js';
import type { Logger } from '../../src/contracts/log/logger.js';
import { type Schedule, scheduleView } from '../../src/contracts/schedules/schedule.js';
import { sendError } from '../../src/gateway/http-server.js';
import type { Schedules } from '../../src/shared/schedules/schedules.js';
import { describeIssues } from './message-request.js';
import { postScheduleBody, toNewSchedule, WEB_API_ACTOR } from './schedule-request.js';

const UNAVAILABLE = 'schedules unavailable: Redis cannot be reached (is it up?); try again shortly';

/**
 * The schedules API, inside the web chat's guarded scope (same Host guard and API token as
 * /api/messages): create, list by conversation, pause, resume, delete.
 */
export function registerScheduleRoutes(
  scope: FastifyInstance,
  schedules: Schedules,
  log: Logger,
  maxChars: number,
): void {
  const body = postScheduleBody(maxChars);
  /** Runs a route's work; a Redis failure is a 503 in words, not a 500. */
  const guarded = async (reply: FastifyReply, work: () => Promise<FastifyReply>) => {
    try {
      return await work();
    } catch (error) {
      log.warn({ err: error }, 'a schedules request failed');
      return sendError(reply, 503, UNAVAILABLE);
    }
  };

  scope.post('/api/schedules', async (request, reply) => {
    const parsed = body.safeParse(request.body);
    if (!parsed.success) return sendError(reply, 400, describeIssues(parsed.error));
    return guarded(reply, async () => {
      const created = await schedules.create(toNewSchedule(parsed.data));
      if (!created.ok) return sendError(reply, created.status, created.error);
      const view = scheduleView(created.schedule, created.next);
      return reply.code(201).send({ id: view.id, next: view.next, conversation: view.conversation });
    });
  });

  scope.get('/api/schedules', async (request, reply) => {
    const name = WebSessionName.safeParse((request.query as Record<string, unknown>).conversation);
    if (!name.success)
      return sendError(
        reply,
        400,
        'conversation: give the conversation as posted, e.g. ?conversation=my-chat',
      );
    return guarded(reply, async () => {
      const found = await schedules.inConversation(webConversationId(name.data));
      const views = await Promise.all(found.map(async (s) => scheduleView(s, await schedules.next(s))));
      return reply.send({ schedules: views });
    });
  });

  const withSchedule =
    (action: (schedule: Schedule, reply: FastifyReply) => Promise<FastifyReply>) =>
    async (request: { params: { id: string } }, reply: FastifyReply) =>
      guarded(reply, async () => {
        const schedule = await schedules.get(request.params.id);
        if (!schedule) return sendError(reply, 404, `no schedule ${request.params.id}`);
        return action(schedule, reply);
      });

  scope.delete<{ Params: { id: string } }>(
    '/api/schedules/:id',
    withSchedule(async (schedule, reply) => {
      await schedules.delete(schedule, WEB_API_ACTOR);
      return reply.code(204).send();
    }),
  );
  scope.post<{ Params: { id: string } }>(
    '/api/schedules/:id/pause',
    withSchedule(async (schedule, reply) => {
      if (!schedule.paused) await schedules.pause(schedule, WEB_API_ACTOR);
      const now = await schedules.get(schedule.id);
      return reply.send(now ? scheduleView(now, undefined) : {});
    }),
  );
  scope.post<{ Params: { id: string } }>(
    '/api/schedules/:id/resume',
    withSchedule(async (schedule, reply) => {
      if (schedule.paused) await schedules.resume(schedule, WEB_API_ACTOR);
      const now = (await schedules.get(schedule.id)) ?? schedule;
      return reply.send(scheduleView(now, await schedules.next(now)));
    }),
  );
}
