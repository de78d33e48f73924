import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { isTimeZone } from '../../src/contracts/config/schedule-settings.js';
import { WebSessionName, webConversationId } from '../../src/contracts/conversation/id.js';
import type { NewSchedule } from '../../src/shared/schedules/schedules.js';
import { textField, userField } from './message-request.js';

const requiredString = (issue: { input?: unknown }) =>
  issue.input === undefined ? 'is required' : 'must be a string';
const optionalString = z.string({ error: 'must be a string' }).optional();

/** The body of `POST /api/schedules`: the single source of truth for what a client may send. */
export function postScheduleBody(maxChars: number) {
  return z.strictObject(
    {
      conversation: z.string({ error: requiredString }).pipe(
        z.union([z.literal('new'), WebSessionName], {
          error: 'conversation must be "new" or 1–64 letters, digits, "-" or "_"',
        }),
      ),
      user: userField(),
      text: textField(maxChars),
      cron: optionalString,
      every: optionalString,
      at: optionalString,
      tz: optionalString.refine(
        (tz) => tz === undefined || isTimeZone(tz),
        'must be an IANA time zone such as "Europe/Berlin"',
      ),
    },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys'
          ? `unknown field(s) ${(issue.keys ?? []).map((k) => `"${k}"`).join(', ')}: send conversation, user, text and one of cron, every, at (and tz)`
          : 'must be a JSON object with conversation, user, text and one of cron, every, at',
    },
  );
}
export type PostScheduleBody = z.infer<ReturnType<typeof postScheduleBody>>;

/** The web API's manager of schedules: the API token is its credential, so it acts as an admin. */
export const WEB_API_ACTOR = 'admin:web-api';

/**
 * The schedule a body asks for. `"conversation": "new"` gives each run a fresh conversation of its own
 * (`new-<random>-<occurrence>`), with its own sandbox.
 */
export function toNewSchedule(body: PostScheduleBody): NewSchedule {
  const fresh = body.conversation === 'new';
  const name = fresh ? `new-${randomBytes(4).toString('hex')}` : body.conversation;
  return {
    conversation: webConversationId(name),
    newThread: fresh,
    owner: { platform: 'web', id: body.user, name: body.user },
    text: body.text,
    when: { cron: body.cron, every: body.every, at: body.at, tz: body.tz },
    actor: `user:web:${body.user}`,
  };
}
