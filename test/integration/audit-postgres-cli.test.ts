import { readdirSync, rmSync } from 'node:fs';
import { expect, it } from 'vitest';
import { type ConversationId, webConversationId } from '../../src/contracts/conversation/id.js';
import { AUDIT_TABLE } from '../../src/shared/audit/pg-schema.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { testInstance } from '../../testkit/redis.js';
import { toolCall } from '../helpers/audit-events.js';
import { auditPgFixture, tmpDir } from '../helpers/audit-postgres.js';
import { describePostgres, dropInstanceRows } from '../helpers/postgres.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { startScriptedStack, testConfig } from '../helpers/stack.js';

/**
 * `sandbot audit verify|show|export` as processes of their own against PostgreSQL, on another "host"
 * (an empty audit dir) than the one that wrote: a tampered or deleted row named, the replies shown,
 * a database that does not answer said in one line; and a real turn's reply read that way.
 */

const instance = testInstance('audit-pg-cli');

describePostgres('sandbot audit against PostgreSQL', (url) => {
  const { dirs, sql, openLog, eventsOf, sandbot } = auditPgFixture(url, instance);

  it('serves `sandbot audit verify|show|export` from another host; verify names a tampered row', async () => {
    const conversation = 'web:pg-cli' as ConversationId;
    const log = openLog();
    await log.record(toolCall('web:pg-other' as ConversationId, 'elsewhere'));
    for (const command of ['ls', 'cat "a,b"', 'pwd']) await log.record(toolCall(conversation, command));
    await log.record({
      conversation,
      turnId: `${conversation}#1-1`,
      actor: 'agent',
      kind: 'reply',
      data: { messageId: 'r1', chars: 27, text: 'Here is the list:\n- a,b\n- c', files: [] },
    });
    await log.settle();

    const ok = await sandbot(['audit', 'verify', conversation]);
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.stdout).toMatch(/^ok {6}web:pg-cli {2}4 events$/m);
    const shown = await sandbot(['audit', 'show', conversation]);
    expect(shown.stdout).toMatch(
      /#2 {2}tool.call {8}agent \[#1-1\] {2}bash \{"command":"cat \\"a,b\\""\} → ok: ok/,
    );
    expect(shown.stdout).toContain(
      '#4  reply            agent [#1-1]  27 chars: Here is the list: - a,b - c\n',
    );
    expect(shown.stdout).toContain('    │ Here is the list:\n    │ - a,b\n    │ - c\n');
    const jsonl = await sandbot(['audit', 'export', conversation]);
    expect(jsonl.stdout).toBe(await log.journal.read(conversation));
    const csv = await sandbot(['audit', 'export', conversation, '--format', 'csv']);
    expect(csv.stdout.split('\r\n')[2]).toContain('"{""args"":{""command"":""cat \\""a,b\\""""}');
    expect(readdirSync(dirs.cli)).toEqual([]);

    const [, , third] = await eventsOf(log, conversation);
    await sql.query(
      `UPDATE ${AUDIT_TABLE} SET event = replace(event, '"pwd"', '"rm -rf /"') WHERE instance = $1 AND conversation = $2 AND seq = 3`,
      [instance, conversation],
    );
    const edited = await sandbot(['audit', 'verify', conversation]);
    expect(edited.code).toBe(1);
    expect(edited.stdout).toContain(
      `BROKEN  web:pg-cli  ${log.journal.fileOf(conversation)} seq 3 (event ${third!.id}): content does not match its hash (the event was edited)`,
    );
    // All conversations of the instance, as `verify` without one lists them.
    const all = await sandbot(['audit', 'verify']);
    expect(all.code).toBe(1);
    expect(all.stdout).toMatch(/^ok {6}web:pg-other {2}1 events$/m);
    expect(all.stdout).toMatch(/^BROKEN {2}web:pg-cli .* seq 3 /m);
    // The last row deleted: the chain itself holds, the head Redis remembers does not.
    await sql.query(`DELETE FROM ${AUDIT_TABLE} WHERE instance = $1 AND conversation = $2 AND seq >= 3`, [
      instance,
      conversation,
    ]);
    const cut = await sandbot(['audit', 'verify', conversation]);
    expect(cut.code).toBe(1);
    expect(cut.stdout).toContain('ends at seq 2 but seq 4 was written: the last 2 events are missing');
    expect(await sandbot(['audit', 'show', 'web:pg-nothing'])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(
        /no audit log for web:pg-nothing \(looked for postgresql:\/\/sandbot:\*\*\*@/,
      ),
    });
  });

  it('says when the database cannot be reached, exit 1', async () => {
    const result = await sandbot(['audit', 'export', 'web:x'], {
      SANDBOT_DATABASE_URL: 'postgresql://sandbot:wrong@127.0.0.1:9/sandbot',
    });
    expect(result).toMatchObject({ code: 1 });
    expect(result.stderr).toMatch(
      /^sandbot: cannot read the audit log in postgresql:\/\/sandbot:\*\*\*@127\.0\.0\.1:9\/sandbot .*ECONNREFUSED/m,
    );
  });

  it('records a real turn’s reply on one host; the CLI on another shows what the user read', async () => {
    const other = testInstance('audit-pg-turn');
    const worker = tmpDir('turn');
    const stackConfig = testConfig(other, { SANDBOT_AUDIT_DIR: worker, SANDBOT_DATABASE_URL: url });
    const answer = 'Two things:\n1. the list\n2. the sum';
    const stack = await startScriptedStack(stackConfig, () => ({ reply: answer }));
    try {
      const sse = await openSse(`${stack.url}/api/conversations/pg-turn/events`);
      try {
        await postMessage(stack.url, 'pg-turn', 'what do you have?');
        const reply = await sse.waitFor((e) => e.type === 'reply' || e.type === 'error');
        expect(reply).toMatchObject({ type: 'reply', text: answer });
      } finally {
        sse.close();
      }
      const conversation = webConversationId('pg-turn');
      await expect
        .poll(
          async () => parseEvents((await stack.worker.audit.journal.read(conversation)) ?? '').at(-1)?.kind,
          {
            timeout: 20_000,
          },
        )
        .toBe('turn.finished');
      expect(readdirSync(worker)).toEqual([]);
      const shown = await sandbot(['audit', 'show', conversation], { SANDBOT_INSTANCE: other });
      expect(shown.code).toBe(0);
      expect(shown.stdout).toMatch(/ {2}message.received +user:web:tester {2}\d+ chars\n/);
      expect(shown.stdout).toMatch(
        / {2}reply +agent \[#\S+\] {2}34 chars: Two things: 1\. the list 2\. the sum\n/,
      );
      expect(shown.stdout).toContain('    │ Two things:\n    │ 1. the list\n    │ 2. the sum\n');
      const verified = await sandbot(['audit', 'verify'], { SANDBOT_INSTANCE: other });
      expect(verified).toMatchObject({ code: 0 });
      expect(verified.stdout).toMatch(/^ok {6}web:pg-turn {2}\d+ events$/m);
    } finally {
      await stack.stop();
      await dropInstanceRows(url, other);
      rmSync(worker, { recursive: true, force: true });
    }
  });
});
