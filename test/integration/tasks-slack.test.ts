import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import type { Config } from '../../src/contracts/config/schema.js';
import type { FakeChatRequest, FakeOllama, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { type FakeSlack, waitFor } from '../../testkit/fakes/fake-slack.js';
import { personMessage, type SlackSender, slashCommand } from '../../testkit/fakes/fake-slack-events.js';
import { type SlackStack, startSlackStack } from '../helpers/slack-stack.js';

/**
 * Tasks in a Slack channel, end to end on real parts (Bolt in Socket Mode against the fake Slack, Redis,
 * the worker, real sandboxes, the fake Ollama): a mention makes a task with its own thread, conversation
 * and sandbox; `/sandbot tasks` shows the board; the per-person limit holds a task in line and starts it
 * when a slot frees; someone else's `/sandbot reset` is refused; `/sandbot done` closes a task and, the
 * channel being ephemeral, wipes it.
 */

const CHANNEL = 'C0TASKS';

/** Runs the request as a bash command and answers with its last output line; "HOLD-x" waits for release. */
function script(request: FakeChatRequest): FakeStep {
  const last = request.messages.at(-1);
  if (last?.role === 'tool') return { reply: `tool said: ${last.content.trim().split('\n').at(-1)}` };
  const text = last?.content ?? '';
  const hold = /HOLD-(\w+)/.exec(text)?.[1];
  if (hold) return { hold, reply: `held ${hold} done` };
  return { toolCalls: [{ name: 'bash', arguments: { command: text } }] };
}

let slack: SlackStack;
let fake: FakeSlack;
let ollama: FakeOllama;
let sender: SlackSender;
let config: Config;

beforeAll(async () => {
  slack = await startSlackStack('tasks-slack', script, (f) => ({
    SLACK_ADMIN_USERS: 'U0DAVE',
    SANDBOT_TASKS_PER_USER: '1',
    SANDBOT_EPHEMERAL: `slack:${f.team}:${CHANNEL}`,
  }));
  ({ fake, ollama, sender, config } = slack);
});

afterAll(async () => {
  await slack?.stop(['A', 'B']);
});

const mention = (user: string, text: string) =>
  personMessage(fake, { channel: CHANNEL, user, text: `<@${fake.botUserId}> ${text}` });

async function command(user: string, text: string): Promise<string> {
  const fields = slashCommand(fake, { channel: CHANNEL, user, text });
  await sender.command(fields);
  const answer = await waitFor(`the answer to /sandbot ${text}`, () =>
    fake.responses.find((r) => r.url === fields.response_url),
  );
  return String(answer.text);
}

const conversationOf = (ts: string) => `slack:${fake.team}:${CHANNEL}:${ts}`;
const replyIn = (ts: string, includes: string) =>
  waitFor(
    `a reply containing "${includes}" in thread ${ts}`,
    () => fake.botMessages(CHANNEL, ts).find((m) => m.text.includes(includes)),
    60_000,
  );

describe('tasks in a Slack channel', () => {
  const started: Record<string, string> = {};

  it('gives three people who ask at once three threads, three conversations and three sandboxes', async () => {
    const asks = ['U0ALICE', 'U0BOB', 'U0CAROL'].map((user) => {
      const name = user.slice(2).toLowerCase();
      // Each writes a file of its own, then counts the .txt files it sees: a shared workspace would show more.
      return [
        user,
        `touch /workspace/${name}.txt; echo ${name}-sees-$(ls /workspace/*.txt | wc -l)`,
      ] as const;
    });
    const messages = asks.map(([user, text]) => ({ user, m: mention(user, text) }));
    await Promise.all(messages.map(({ m }) => sender.event(m.mention)));
    const replies = await Promise.all(
      messages.map(({ user, m }) => {
        started[user] = m.ts;
        return replyIn(m.ts, 'tool said:');
      }),
    );
    expect(replies.map((r) => r.text)).toEqual([
      'tool said: alice-sees-1',
      'tool said: bob-sees-1',
      'tool said: carol-sees-1',
    ]);
    const sandboxes = (await sandboxDriverFromConfig(config).list()).map((s) => s.conversation);
    for (const ts of Object.values(started)) expect(sandboxes).toContain(conversationOf(ts));
  });

  it('shows the channel’s tasks on the board, with status, owner, age and a link to the thread', async () => {
    const board = await waitFor('three tasks waiting for input', async () => {
      const text = await command('U0BOB', 'tasks');
      return (text.match(/waiting for input/g) ?? []).length === 3 && text;
    });
    expect(board).toMatch(/^\*Tasks in <#C0TASKS>\*/);
    for (const [user, ts] of Object.entries(started)) {
      const link = `https://slack.com/archives/${CHANNEL}/p${ts.replace('.', '')}`;
      expect(board).toMatch(
        new RegExp(
          `💬 \\*waiting for input\\* · <${link}\\|touch /workspace/\\w+\\.txt.*> · <@${user}> · just now`,
        ),
      );
    }
  });

  it('refuses a reset of someone else’s task: its owner’s files stay', async () => {
    const ts = started.U0ALICE as string;
    const link = `<https://slack.com/archives/${CHANNEL}/p${ts.replace('.', '')}>`;
    expect(await command('U0BOB', `reset ${link}`)).toBe(
      'Only <@U0ALICE> (who started it) or an admin can use `/sandbot reset` on it.',
    );
    // Had the reset been queued, it would run before this turn and wipe the workspace.
    const next = personMessage(fake, {
      channel: CHANNEL,
      user: 'U0ALICE',
      text: 'test -f /workspace/alice.txt && echo alice-file-kept',
      thread_ts: ts,
    });
    await sender.event(next.message);
    await replyIn(ts, 'tool said: alice-file-kept');
  });

  it('holds a second running task of the same person in line, and starts it when the first ends', async () => {
    const first = mention('U0ALICE', 'HOLD-A');
    await sender.event(first.mention);
    await ollama.waitForHold('A');
    const second = mention('U0ALICE', 'HOLD-B then more');
    await sender.event(second.mention);
    const progress = await waitFor(
      'the waiting notice in the second thread',
      () => fake.botMessages(CHANNEL, second.ts).find((m) => m.text.includes('Waiting for a free slot')),
      30_000,
    );
    expect(progress.text).toContain('you already have 1 task running (the limit per person)');
    expect(progress.text).toContain('1st in line');
    expect(await command('U0ALICE', 'tasks')).toMatch(/🕒 \*queued\* · <[^>]+\|HOLD-B then more>/);
    // Someone else's task is not held back by alice's limit.
    const other = mention('U0BOB', 'echo not-held');
    await sender.event(other.mention);
    await replyIn(other.ts, 'tool said: not-held');
    expect(ollama.chatRequests().some((r) => r.messages.at(-1)?.content.includes('HOLD-B'))).toBe(false);

    ollama.release('A');
    await replyIn(first.ts, 'held A done');
    await ollama.waitForHold('B');
    ollama.release('B');
    await replyIn(second.ts, 'held B done');
  });

  it('closes a task with done (owner or admin only), wiping it in an ephemeral channel; the thread says so', async () => {
    const ts = started.U0CAROL as string;
    const driver = sandboxDriverFromConfig(config);
    expect((await driver.list()).some((s) => s.conversation === conversationOf(ts))).toBe(true);
    const link = `<https://slack.com/archives/${CHANNEL}/p${ts.replace('.', '')}>`;
    expect(await command('U0BOB', `done ${link}`)).toBe(
      'Only <@U0CAROL> (who started it) or an admin can close this task.',
    );
    expect(await command('U0CAROL', 'done')).toMatch(/^Closed “touch \/workspace\/carol/);
    const notice = await replyIn(ts, 'Task closed');
    expect(notice.text).toBe(
      '✅ Task closed by carol. Its workspace and history are wiped (tasks in this channel are ephemeral).',
    );
    await waitFor('the sandbox gone', async () =>
      (await driver.list()).every((s) => s.conversation !== conversationOf(ts)),
    );
    const volumes = await createDocker(config.DOCKER_HOST).listVolumes({
      filters: { label: [`sandbot.conversation=${conversationOf(ts)}`] },
    });
    expect(volumes.Volumes ?? []).toEqual([]);
    expect(await command('U0CAROL', `done ${link}`)).toBe('That task is already done.');
    expect(await command('U0BOB', 'tasks')).toMatch(/✅ \*done\* · <[^>]+\|touch \/workspace\/carol/);
    // An admin may close someone else's task.
    expect(
      await command(
        'U0DAVE',
        `done <https://slack.com/archives/${CHANNEL}/p${(started.U0BOB as string).replace('.', '')}>`,
      ),
    ).toMatch(/^Closed/);
    await replyIn(started.U0BOB as string, 'Task closed by dave');
  });
});
