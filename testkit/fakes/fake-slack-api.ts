/**
 * The state of the fake Slack workspace and its Web API methods: what the adapter and Bolt call,
 * answered as Slack answers (`{ok:false, error}` with HTTP 200, tokens checked per method).
 */

export interface FakeMessage {
  channel: string;
  ts: string;
  thread_ts?: string;
  text: string;
  user: string;
  bot_id?: string;
  /** Texts set by chat.update, in order. */
  edits: string[];
  files: FakeUpload[];
  /** Block Kit blocks, as last posted or updated. */
  blocks?: Record<string, unknown>[];
}

export interface FakeUpload {
  id: string;
  filename: string;
  bytes: Buffer;
  title?: string;
}

export type Args = Record<string, unknown>;
export type Answer = { status?: number; headers?: Record<string, string>; body: unknown };

export abstract class FakeSlackWorkspace {
  readonly team = 'T0FAKE';
  readonly botUserId = 'U0BOT';
  readonly botId = 'B0BOT';
  readonly botToken = 'xoxb-fake-bot-token';
  readonly appToken = 'xapp-fake-app-token';
  readonly signingSecret = 'fake-signing-secret';
  readonly messages: FakeMessage[] = [];
  readonly ephemerals: Args[] = [];
  readonly users = new Map<string, string>([
    ['U0ALICE', 'alice'],
    ['U0BOB', 'bob'],
    ['U0CAROL', 'carol'],
    ['U0DAVE', 'dave'],
    ['U0MALLORY', 'mallory'],
  ]);
  /** Sent in x-oauth-scopes with every bot-token call, as Slack does. */
  scopes = [
    'app_mentions:read',
    'channels:history',
    'groups:history',
    'im:history',
    'mpim:history',
    'chat:write',
    'reactions:write',
    'files:read',
    'files:write',
    'users:read',
    'commands',
  ];
  protected readonly reactions = new Map<string, Set<string>>();
  protected readonly pendingUploads = new Map<string, FakeUpload & { length: number }>();
  protected counter = 0;

  /** The fake's own address (upload URLs point there). */
  protected abstract baseUrl(): string;
  /** A Socket Mode URL from apps.connections.open, or undefined when Slack refuses one. */
  protected abstract openSocketUrl(): string | undefined;

  /** A fresh message ts, unique within this fake. */
  nextTs(): string {
    this.counter += 1;
    return `${1_700_000_000 + this.counter}.${String(this.counter).padStart(6, '0')}`;
  }

  /** A person's message, known to the fake so reactions on it work as in Slack. */
  recordUserMessage(message: {
    channel: string;
    ts: string;
    thread_ts?: string;
    text: string;
    user: string;
  }): void {
    this.messages.push({ ...message, edits: [], files: [] });
  }

  reactionsOn(channel: string, ts: string): string[] {
    return [...(this.reactions.get(`${channel}:${ts}`) ?? [])];
  }

  /** What the bot posted in a thread (or at a channel's top level when threadTs is undefined). */
  botMessages(channel: string, threadTs?: string): FakeMessage[] {
    return this.messages.filter(
      (m) => m.channel === channel && m.user === this.botUserId && m.thread_ts === threadTs,
    );
  }

  /** Slack's answer to one Web API call. */
  protected answer(method: string, args: Args, token: string | undefined): Answer {
    const expected = method === 'apps.connections.open' ? this.appToken : this.botToken;
    if (token !== expected) return { body: { ok: false, error: token ? 'invalid_auth' : 'not_authed' } };
    const ok = (body: Args): Answer => ({ body: { ok: true, ...body } });
    const fail = (error: string): Answer => ({ body: { ok: false, error } });
    const channel = String(args.channel ?? args.channel_id ?? '');
    switch (method) {
      case 'auth.test':
        return ok({
          url: 'https://fake.slack.com/',
          team: 'Fake',
          user: 'sandbot',
          team_id: this.team,
          user_id: this.botUserId,
          bot_id: this.botId,
        });
      case 'apps.connections.open': {
        const url = this.openSocketUrl();
        return url ? ok({ url }) : fail('internal_error');
      }
      case 'users.info': {
        const name = this.users.get(String(args.user));
        return name
          ? ok({
              user: {
                id: args.user,
                name,
                real_name: name,
                profile: { display_name: name, real_name: name },
              },
            })
          : fail('user_not_found');
      }
      case 'chat.postMessage': {
        if (!channel) return fail('channel_not_found');
        if (!args.text) return fail('no_text');
        const message = this.post(channel, String(args.text), args.thread_ts as string | undefined, []);
        const blocks = blocksOf(args.blocks);
        if (blocks) message.blocks = blocks;
        return ok({
          channel,
          ts: message.ts,
          message: { type: 'message', text: message.text, user: this.botUserId, ts: message.ts },
        });
      }
      case 'chat.update': {
        const message = this.messages.find((m) => m.channel === channel && m.ts === args.ts);
        if (!message) return fail('message_not_found');
        message.text = String(args.text ?? '');
        message.edits.push(message.text);
        const blocks = blocksOf(args.blocks);
        if (blocks) message.blocks = blocks;
        else delete message.blocks;
        return ok({ channel, ts: message.ts, text: message.text });
      }
      case 'chat.postEphemeral':
        this.ephemerals.push(args);
        return ok({ message_ts: this.nextTs() });
      case 'reactions.add':
      case 'reactions.remove': {
        const key = `${channel}:${String(args.timestamp)}`;
        if (!this.messages.some((m) => `${m.channel}:${m.ts}` === key)) return fail('message_not_found');
        const set = this.reactions.get(key) ?? new Set<string>();
        this.reactions.set(key, set);
        const name = String(args.name);
        if (method === 'reactions.add') {
          if (set.has(name)) return fail('already_reacted');
          set.add(name);
        } else if (!set.delete(name)) return fail('no_reaction');
        return ok({});
      }
      case 'files.getUploadURLExternal': {
        this.counter += 1;
        const id = `F0OUT${this.counter}`;
        this.pendingUploads.set(id, {
          id,
          filename: String(args.filename),
          length: Number(args.length),
          bytes: Buffer.alloc(0),
        });
        return ok({ file_id: id, upload_url: `${this.baseUrl()}/upload/${id}` });
      }
      case 'files.completeUploadExternal': {
        const entries = JSON.parse(String(args.files ?? '[]')) as { id: string; title?: string }[];
        const files: FakeUpload[] = [];
        for (const entry of entries) {
          const upload = this.pendingUploads.get(entry.id);
          if (!upload || upload.bytes.length !== upload.length) return fail('file_not_found');
          this.pendingUploads.delete(entry.id);
          files.push({
            id: upload.id,
            filename: upload.filename,
            bytes: upload.bytes,
            ...(entry.title ? { title: entry.title } : {}),
          });
        }
        if (channel) {
          this.post(channel, String(args.initial_comment ?? ''), args.thread_ts as string | undefined, files);
        }
        return ok({ files: files.map((f) => ({ id: f.id, name: f.filename, title: f.title })) });
      }
      default:
        return fail('unknown_method');
    }
  }

  protected post(
    channel: string,
    text: string,
    threadTs: string | undefined,
    files: FakeUpload[],
  ): FakeMessage {
    const message: FakeMessage = {
      channel,
      ts: this.nextTs(),
      text,
      user: this.botUserId,
      bot_id: this.botId,
      edits: [],
      files,
    };
    if (threadTs) message.thread_ts = threadTs;
    this.messages.push(message);
    return message;
  }
}

/** Blocks as the web client sends them: an array in a JSON body, a JSON string in a form. */
function blocksOf(value: unknown): Record<string, unknown>[] | undefined {
  const parsed = typeof value === 'string' ? (JSON.parse(value) as unknown) : value;
  return Array.isArray(parsed) ? (parsed as Record<string, unknown>[]) : undefined;
}
