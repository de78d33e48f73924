import { createHmac, randomUUID } from 'node:crypto';
import type { FakeMessage, FakeSlack } from './fake-slack.js';

/**
 * What Slack sends an app, built like Slack builds it, and the two ways it arrives: a signed POST to
 * the app's Events API URL, or an envelope over Socket Mode.
 */

export interface MessageSpec {
  channel: string;
  user: string;
  text: string;
  ts?: string;
  thread_ts?: string;
  channel_type?: 'channel' | 'group' | 'im' | 'mpim';
  files?: unknown[];
  bot_id?: string;
  subtype?: string;
}

/** An `event_callback` body around one event. */
export function eventBody(fake: FakeSlack, event: Record<string, unknown>): Record<string, unknown> {
  return {
    token: 'legacy-verification-token',
    team_id: fake.team,
    api_app_id: 'A0FAKE',
    event,
    type: 'event_callback',
    event_id: `Ev${randomUUID().replace(/-/g, '').slice(0, 10).toUpperCase()}`,
    event_time: Math.floor(Date.now() / 1000),
    authorizations: [
      { team_id: fake.team, user_id: fake.botUserId, is_bot: true, is_enterprise_install: false },
    ],
    is_ext_shared_channel: false,
  };
}

/**
 * A person's message, recorded in the fake (so reactions on it work), as the two events Slack sends
 * when it mentions the bot in a channel: `message` and `app_mention`, with the same ts.
 */
export function personMessage(fake: FakeSlack, spec: MessageSpec) {
  const ts = spec.ts ?? fake.nextTs();
  const common = {
    user: spec.user,
    text: asSlackSendsIt(spec.text),
    ts,
    channel: spec.channel,
    team: fake.team,
    event_ts: ts,
    ...(spec.thread_ts ? { thread_ts: spec.thread_ts } : {}),
    ...(spec.files ? { files: spec.files, upload: false } : {}),
    ...(spec.bot_id ? { bot_id: spec.bot_id } : {}),
    ...(spec.subtype ? { subtype: spec.subtype } : spec.files ? { subtype: 'file_share' } : {}),
  };
  if (!spec.bot_id)
    fake.recordUserMessage({
      channel: spec.channel,
      ts,
      text: spec.text,
      user: spec.user,
      ...(spec.thread_ts ? { thread_ts: spec.thread_ts } : {}),
    });
  const channelType = spec.channel_type ?? (spec.channel.startsWith('D') ? 'im' : 'channel');
  return {
    ts,
    message: eventBody(fake, { type: 'message', channel_type: channelType, ...common }),
    mention: eventBody(fake, { type: 'app_mention', ...common }),
  };
}

/** Slack escapes &, < and > in message text, except in its own markup (<@U1>, <#C1>, <!here>, <http…>). */
export function asSlackSendsIt(text: string): string {
  return text
    .split(/(<[@#!][^<>\s]*>|<https?:[^<>\s]*>)/)
    .map((piece, i) =>
      i % 2 === 1 ? piece : piece.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'),
    )
    .join('');
}

/** A slash command's fields, as Slack posts them (form fields over HTTP, an object over Socket Mode). */
export function slashCommand(
  fake: FakeSlack,
  spec: { channel: string; user: string; text: string },
): Record<string, string> {
  return {
    token: 'legacy-verification-token',
    team_id: fake.team,
    team_domain: 'fake',
    channel_id: spec.channel,
    channel_name: spec.channel.startsWith('D') ? 'directmessage' : 'general',
    user_id: spec.user,
    user_name: fake.users.get(spec.user) ?? spec.user.toLowerCase(),
    command: '/sandbot',
    text: spec.text,
    api_app_id: 'A0FAKE',
    is_enterprise_install: 'false',
    response_url: fake.responseUrl(),
    trigger_id: `${Date.now()}.${randomUUID().slice(0, 8)}`,
  };
}

/**
 * A `block_actions` payload: a person clicks a button on a message the bot posted, as Slack sends it
 * (the same object over Socket Mode, and as the form field `payload` to the request URL).
 */
export function blockActions(
  fake: FakeSlack,
  spec: { user: string; message: FakeMessage; actionId: string },
): Record<string, unknown> {
  const { message } = spec;
  const action = findAction(message, spec.actionId);
  const name = fake.users.get(spec.user) ?? spec.user.toLowerCase();
  return {
    type: 'block_actions',
    user: { id: spec.user, username: name, name, team_id: fake.team },
    api_app_id: 'A0FAKE',
    token: 'legacy-verification-token',
    container: {
      type: 'message',
      message_ts: message.ts,
      channel_id: message.channel,
      is_ephemeral: false,
      ...(message.thread_ts ? { thread_ts: message.thread_ts } : {}),
    },
    trigger_id: `${Date.now()}.${randomUUID().slice(0, 8)}`,
    team: { id: fake.team, domain: 'fake' },
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: message.channel, name: message.channel.startsWith('D') ? 'directmessage' : 'general' },
    message: {
      type: 'message',
      user: message.user,
      ts: message.ts,
      text: message.text,
      ...(message.bot_id ? { bot_id: message.bot_id } : {}),
      ...(message.thread_ts ? { thread_ts: message.thread_ts } : {}),
      ...(message.blocks ? { blocks: message.blocks } : {}),
    },
    state: { values: {} },
    response_url: fake.responseUrl(),
    actions: [
      {
        action_id: spec.actionId,
        block_id: action.blockId,
        text: { type: 'plain_text', text: action.label, emoji: true },
        ...(action.value === undefined ? {} : { value: action.value }),
        type: 'button',
        action_ts: `${Math.floor(Date.now() / 1000)}.000100`,
      },
    ],
  };
}

/** The button a click names, as the message's blocks show it (a click on a missing button is a test bug). */
function findAction(message: FakeMessage, actionId: string) {
  for (const block of message.blocks ?? []) {
    const elements = (block.elements ?? []) as Record<string, unknown>[];
    const button = elements.find((e) => e.type === 'button' && e.action_id === actionId);
    if (button) {
      return {
        blockId: String(block.block_id ?? 'actions'),
        label: String((button.text as { text?: unknown } | undefined)?.text ?? ''),
        value: button.value === undefined ? undefined : String(button.value),
      };
    }
  }
  throw new Error(`fake slack: message ${message.ts} has no button ${actionId}`);
}

export interface SignOptions {
  retryNum?: number;
  /** Sign with this secret instead of the right one. */
  secret?: string;
  /** Seconds since the epoch to claim in the signature (default: now). */
  timestamp?: number;
}

/** POSTs a body to an Events API URL with Slack's v0 signature; returns the HTTP status and body. */
export async function postSigned(
  url: string,
  secret: string,
  body: string,
  contentType: string,
  options: SignOptions = {},
): Promise<{ status: number; text: string }> {
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const signature = `v0=${createHmac('sha256', options.secret ?? secret)
    .update(`v0:${timestamp}:${body}`)
    .digest('hex')}`;
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': contentType,
      'x-slack-request-timestamp': timestamp,
      'x-slack-signature': signature,
      ...(options.retryNum
        ? { 'x-slack-retry-num': String(options.retryNum), 'x-slack-retry-reason': 'http_timeout' }
        : {}),
    },
    body,
  });
  return { status: response.status, text: await response.text() };
}

export type Transport = 'socket' | 'http';

/** Sends events and commands to the app the way the chosen transport does. */
export class SlackSender {
  constructor(
    private readonly fake: FakeSlack,
    readonly transport: Transport,
    /** HTTP mode: the app's Events API URL. */
    private readonly eventsUrl?: string,
  ) {}

  async event(body: Record<string, unknown>, options: SignOptions = {}): Promise<number> {
    if (this.transport === 'socket') {
      await this.fake.socket.send('events_api', body, {
        retryAttempt: options.retryNum ?? 0,
        ...(options.retryNum ? { retryReason: 'timeout' } : {}),
      });
      return 200;
    }
    const result = await postSigned(
      this.url(),
      this.fake.signingSecret,
      JSON.stringify(body),
      'application/json',
      options,
    );
    return result.status;
  }

  async command(fields: Record<string, string>, options: SignOptions = {}): Promise<number> {
    if (this.transport === 'socket') {
      await this.fake.socket.send('slash_commands', fields);
      return 200;
    }
    const form = new URLSearchParams(fields).toString();
    const result = await postSigned(
      this.url(),
      this.fake.signingSecret,
      form,
      'application/x-www-form-urlencoded',
      options,
    );
    return result.status;
  }

  /** An interaction payload (a button click): an `interactive` envelope, or a signed form `payload=`. */
  async interaction(payload: Record<string, unknown>): Promise<number> {
    if (this.transport === 'socket') {
      await this.fake.socket.send('interactive', payload);
      return 200;
    }
    const form = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
    const result = await postSigned(
      this.url(),
      this.fake.signingSecret,
      form,
      'application/x-www-form-urlencoded',
    );
    return result.status;
  }

  private url(): string {
    if (!this.eventsUrl) throw new Error('SlackSender: HTTP transport needs the events URL');
    return this.eventsUrl;
  }
}
