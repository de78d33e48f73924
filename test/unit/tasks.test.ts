import { describe, expect, it } from 'vitest';
import { renderDiscordBoard } from '../../adapters/discord/task-commands.js';
import { renderSlackBoard, slackThreadLink } from '../../adapters/slack/task-commands.js';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import {
  childConversationId,
  isSubAgent,
  nextStatus,
  parentConversationId,
  subAgentLabel,
  type Task,
  taskScopeOf,
  taskTitle,
} from '../../src/contracts/tasks/task.js';
import { ageText, boardOf } from '../../src/gateway/commands/task-board.js';
import { type Contender, decideAdmission, ordinal, waitingNotice } from '../../src/worker/tasks/fairness.js';
import { planSegments } from '../../src/worker/turn/turn-plan.js';
import { webMessage } from '../helpers/messages.js';

const id = (text: string) => ConversationId.parse(text);

describe('task status', () => {
  it('follows turns: queued → running → waiting for input, failed, killed', () => {
    expect(nextStatus('queued', 'started')).toBe('running');
    expect(nextStatus('running', 'replied')).toBe('waiting');
    expect(nextStatus('running', 'stopped')).toBe('waiting');
    expect(nextStatus('running', 'failed')).toBe('failed');
    expect(nextStatus('waiting', 'submitted')).toBe('queued');
    expect(nextStatus('running', 'submitted')).toBe('running');
    expect(nextStatus('running', 'killed')).toBe('killed');
  });

  it('keeps a closed or killed task so when a late outcome arrives; new work reopens a closed one', () => {
    for (const late of ['replied', 'stopped', 'failed'] as const) {
      expect(nextStatus('done', late)).toBe('done');
      expect(nextStatus('killed', late)).toBe('killed');
    }
    expect(nextStatus('done', 'submitted')).toBe('queued');
    expect(nextStatus('killed', 'submitted')).toBe('killed');
    expect(nextStatus('killed', 'started')).toBe('running');
    expect(nextStatus('waiting', 'closed')).toBe('done');
  });
});

describe('what is a task', () => {
  it('is a thread in a group channel, not a DM or a web chat', () => {
    expect(taskScopeOf(id('slack:T1:C2:1700000000.000100'))).toBe('slack:T1:C2');
    expect(taskScopeOf(id('slack:T1:D2:dm'))).toBeUndefined();
    expect(taskScopeOf(id('slack:T1:D2:1700000000.000100'))).toBeUndefined();
    expect(taskScopeOf(id('discord:111:222:333'))).toBe('discord:111:222');
    expect(taskScopeOf(id('discord:dm:444'))).toBeUndefined();
    expect(taskScopeOf(id('web:alice'))).toBeUndefined();
    expect(taskScopeOf(id('slack:T1:C2:1700000000.000100:sub-1'))).toBeUndefined();
  });

  it('takes its title from the first line of the request', () => {
    expect(taskTitle('\n  fix   the build \nthen test')).toBe('fix the build');
    expect(taskTitle('')).toBe('task');
    expect(taskTitle('x'.repeat(200))).toHaveLength(80);
  });

  it('names sub-agents by their path, within the conversation id limits', () => {
    const root = id('slack:T1:C2:1700000000.000100');
    const child = childConversationId(root, 2);
    expect(child).toBe('slack:T1:C2:1700000000.000100:sub-2');
    expect(child && childConversationId(child, 3)).toBe('slack:T1:C2:1700000000.000100:sub-2.3');
    expect(child && subAgentLabel(child)).toBe('sub-2');
    expect(isSubAgent(root)).toBe(false);
    expect(childConversationId(id('web:a:b:c:d'), 1)).toBeUndefined();
    expect(childConversationId(id('web:x'), 1)).toBe('web:x:sub-1');
    expect(child && parentConversationId(child)).toBe(root);
    expect(parentConversationId(id('web:x:sub-2.3'))).toBe('web:x:sub-2');
    expect(parentConversationId(root)).toBeUndefined();
  });
});

describe('fairness', () => {
  const task = (conversation: string, owner: string, scope: string, since = 0): Contender => ({
    conversation,
    owner,
    scope,
    since,
  });
  const limits = { perUser: 1, perChannel: 2 };

  it('admits a task while its owner and channel are under their limits', () => {
    expect(decideAdmission(task('a', 'u1', 'c1'), [], [], limits)).toEqual({ admit: true });
    expect(decideAdmission(task('b', 'u2', 'c1'), [task('a', 'u1', 'c1')], [], limits)).toEqual({
      admit: true,
    });
  });

  it('holds a task over the per-person limit and says where it stands in line', () => {
    const running = [task('a', 'u1', 'c1')];
    const waiting = [task('b', 'u1', 'c1', 1)];
    expect(decideAdmission(task('c', 'u1', 'c2', 2), running, waiting, limits)).toEqual({
      admit: false,
      reason: 'user',
      position: 2,
      limit: 1,
    });
  });

  it('holds a task over the per-channel limit, first come first served', () => {
    const running = [task('a', 'u1', 'c1'), task('b', 'u2', 'c1')];
    const decision = decideAdmission(task('d', 'u4', 'c1', 5), running, [task('c', 'u3', 'c1', 3)], limits);
    expect(decision).toMatchObject({ admit: false, reason: 'channel', position: 2 });
    // Once one finishes, the earlier waiting task goes first, and this one is next.
    const after = decideAdmission(
      task('d', 'u4', 'c1', 5),
      running.slice(1),
      [task('c', 'u3', 'c1', 3)],
      limits,
    );
    expect(after).toMatchObject({ admit: false, position: 1 });
  });

  it('lets a later task by someone else pass one held back by its owner’s limit', () => {
    const running = [task('a', 'u1', 'c1')];
    expect(decideAdmission(task('c', 'u2', 'c1', 2), running, [task('b', 'u1', 'c1', 1)], limits)).toEqual({
      admit: true,
    });
  });

  it('counts a task that is already running (a rerun after a takeover) only once', () => {
    expect(decideAdmission(task('a', 'u1', 'c1'), [task('a', 'u1', 'c1')], [], limits)).toEqual({
      admit: true,
    });
  });

  it('tells the thread why it waits and its place', () => {
    expect(waitingNotice({ admit: false, reason: 'user', position: 2, limit: 1 })).toBe(
      'Waiting for a free slot: you already have 1 task running (the limit per person). This task is 2nd in line and starts by itself.',
    );
    expect([1, 2, 3, 4, 11, 12, 21, 22, 103].map(ordinal)).toEqual([
      '1st',
      '2nd',
      '3rd',
      '4th',
      '11th',
      '12th',
      '21st',
      '22nd',
      '103rd',
    ]);
  });
});

describe('task board', () => {
  const now = Date.parse('2025-01-01T12:00:00Z');
  const make = (n: number, status: Task['status'], minutesAgo: number, extra: Partial<Task> = {}): Task => ({
    conversation: id(`slack:T1:C2:170000000${n}.000100`),
    scope: 'slack:T1:C2',
    owner: { platform: 'slack', id: `U${n}` },
    title: `task ${n}`,
    createdAt: new Date(now - minutesAgo * 60_000).toISOString(),
    updatedAt: new Date(now - minutesAgo * 60_000).toISOString(),
    root: id(`slack:T1:C2:170000000${n}.000100`),
    depth: 0,
    status,
    ...extra,
  });

  it('lists open tasks first, recently closed ones after, and leaves out sub-agents and old closed ones', () => {
    const board = boardOf(
      [
        make(1, 'waiting', 10),
        make(2, 'done', 30),
        make(3, 'running', 5),
        make(4, 'queued', 1),
        make(5, 'done', 3000),
        make(6, 'running', 2, { depth: 1 }),
      ],
      now,
    );
    expect(board.rows.map((r) => [r.task.title, r.status, r.age])).toEqual([
      ['task 3', 'running', '5 min'],
      ['task 4', 'queued', '1 min'],
      ['task 1', 'waiting for input', '10 min'],
      ['task 2', 'done', '30 min'],
    ]);
    expect(board.more).toBe(0);
    expect([0, 59_000, 3_600_000 * 3, 3_600_000 * 72].map(ageText)).toEqual([
      'just now',
      'just now',
      '3 h',
      '3 d',
    ]);
  });

  it('renders a row per task with a link to its thread and its owner, on both platforms', () => {
    const board = boardOf([make(1, 'running', 5, { title: 'a <b> | c' })], now);
    expect(renderSlackBoard('C2', board)).toBe(
      '*Tasks in <#C2>*\n⏳ *running* · <https://slack.com/archives/C2/p1700000001000100|a &lt;b&gt; ¦ c> · <@U1> · 5 min',
    );
    expect(slackThreadLink('slack:T1:C2:dm')).toBeUndefined();
    const discord = boardOf(
      [{ ...make(1, 'waiting', 5), conversation: id('discord:1:2:3'), title: '*x*' }],
      now,
    );
    expect(renderDiscordBoard('2', discord)).toBe(
      `**Tasks in <#2>**\n💬 **waiting for input** · <#3> \\*x\\* · <@U1> · <t:${Math.floor((now - 300_000) / 1000)}:R>`,
    );
    expect(renderSlackBoard('C9', boardOf([], now))).toMatch(/^No tasks in <#C9> yet/);
  });
});

describe('done in a batch', () => {
  it('closes the task without running the messages queued before it', () => {
    const turn = {
      turnId: 't#1-3',
      conversation: id('web:x'),
      fromSeq: 1,
      toSeq: 3,
      messages: [webMessage('x', 'one'), webMessage('x', '', { command: 'done' }), webMessage('x', 'again')],
    };
    expect(planSegments(turn).map((s) => [s.kind, s.turn.messages.map((m) => m.text)])).toEqual([
      ['done', ['']],
      ['chat', ['again']],
    ]);
  });
});
