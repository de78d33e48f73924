import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/contracts/audit/events.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { createRedis } from '../../src/shared/redis/connection.js';
import { ApprovalStore } from '../../src/shared/stores/approval-store.js';
import { Quarantine } from '../../src/shared/stores/quarantine.js';
import { addSkill } from '../../src/worker/skills/vetting.js';
import type { FakeChatRequest, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { testInstance } from '../../testkit/redis.js';
import { greeterSkill, writeSkill } from '../helpers/skill-fixtures.js';
import { registryOf } from '../helpers/skill-stack.js';
import { postMessage } from '../helpers/sse.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';
import { turnsSettled } from '../helpers/turns.js';

/**
 * The console in headless Chromium against a real gateway, worker and sandbox (the model scripted):
 * sign in, see a running conversation, watch its timeline grow live, kill it, approve a request, and
 * once on a phone-sized screen. Screenshots go to test-results/console/.
 */

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'console-browser-token-0123456789';
const OPERATOR = 'Ada';
const SHOTS = path.resolve('test-results/console');
const dir = mkdtempSync(path.join(tmpdir(), 'sandbot-console-browser-'));
const config = testConfig(testInstance('console-ui'), {
  SANDBOT_API_TOKEN: TOKEN,
  SANDBOT_AUDIT_DIR: dir,
  SANDBOT_SKILLS_DIR: path.join(dir, 'skills'),
});
const instance = config.SANDBOT_INSTANCE;
const session = 'console-live';
const conversation = webConversationId(session);
const convUrl = () => `${stack.url}/console/conversations/${encodeURIComponent(conversation)}`;

/** One tool call per message ("one", "two"), the second held until the test lets it go. */
function script(request: FakeChatRequest): FakeStep {
  const last = request.messages.at(-1);
  if (last?.role === 'tool') return { reply: 'done' };
  const text = last?.content ?? '';
  if (text.includes('two')) {
    return { hold: 'two', toolCalls: [{ name: 'bash', arguments: { command: 'echo two > two.txt' } }] };
  }
  return { toolCalls: [{ name: 'bash', arguments: { command: 'echo one > one.txt' } }] };
}

let stack: ScriptedStack;
let browser: Browser;
let page: Page;
let redis: Redis;

const shot = async (name: string) => {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
};

async function auditEvents(until: (events: AuditEvent[]) => boolean): Promise<AuditEvent[]> {
  const journal = new AuditJournal(dir, instance);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const events = parseEvents((await journal.read(conversation)) ?? '');
    if (until(events) || Date.now() > deadline) return events;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const api = { authorization: `Bearer ${TOKEN}` };

describe.skipIf(!existsSync(CHROMIUM))(`the console in headless Chromium (needs ${CHROMIUM})`, () => {
  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    // A skill added but not approved: the worker reports it as waiting for approval.
    await addSkill(registryOf(config), await writeSkill(greeterSkill()), 'test-admin');
    stack = await startScriptedStack(config, script);
    redis = createRedis(config.SANDBOT_REDIS_URL, 'console-browser');
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    stack?.ollama.release('two');
    await stack?.stop();
    redis?.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('signs in with the token and a name', async () => {
    await page.goto(`${stack.url}/console`);
    await shot('01-sign-in');
    await page.type('#token', TOKEN);
    await page.type('#name', OPERATOR);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    expect(await page.$eval('header', (h) => h.textContent)).toContain(`Signed in as ${OPERATOR}`);
    const cookies = await browser.cookies();
    const cookie = cookies.find((c) => c.name === 'sandbot_console');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/console' });
    expect(cookie?.value).not.toContain(TOKEN);
  });

  it('shows a running conversation in the list, and its sandbox with CPU and memory', async () => {
    await postMessage(stack.url, session, 'one', 'tester', api);
    await turnsSettled(redis, instance, conversation, 60_000);
    await postMessage(stack.url, session, 'two', 'tester', api);
    await stack.ollama.waitForHold('two');
    // One request waiting on the overview (the last test decides another).
    await new ApprovalStore(redis, instance).create({
      conversation,
      platform: 'web',
      route: {},
      kind: 'network',
      target: 'pypi.org',
      reason: 'to install the requests package',
      turnId: `${conversation}#2`,
      timeoutSeconds: 600,
    });
    // The worker reports its sandboxes every 10 s: reload until this one is in.
    let sandboxes = '';
    for (let i = 0; i < 30 && !sandboxes.includes(conversation); i++) {
      await page.goto(`${stack.url}/console`);
      sandboxes = await page.$eval('#sandboxes', (s) => s.textContent ?? '');
      if (!sandboxes.includes(conversation)) await new Promise((r) => setTimeout(r, 1000));
    }
    expect(sandboxes).toContain(conversation);
    const cells = await page.$eval(`#sandboxes tr[data-sandbox="${conversation}"]`, (tr) =>
      [...(tr as HTMLTableRowElement).cells].map((c) => c.textContent ?? ''),
    );
    expect(cells.slice(1)).toEqual([
      'running',
      expect.stringMatching(/^\d+(\.\d+)?%$/),
      expect.stringMatching(/^[\d.]+ [KM]iB of 256\.0 MiB$/), // SANDBOX_MEMORY_MB=256
      expect.stringMatching(/^[\d.]+ [KM]iB of [\d.]+ [MG]iB$/), // the capped /workspace's file system
    ]);
    const row = await page.$eval(`tr[data-conversation="${conversation}"]`, (tr) => tr.textContent ?? '');
    expect(row).toContain('running');
    expect(row).toContain('web:tester');
    const skills = await page.$eval('#skills', (s) => s.textContent ?? '');
    expect(skills).toContain('greeter@1.0.0');
    expect(skills).toContain('sandbot skill approve greeter@1.0.0');
    await shot('02-overview');
  }, 120_000);

  it('shows the conversation’s timeline growing live, without a reload', async () => {
    await page.goto(convUrl());
    await page.waitForFunction(() => document.getElementById('live-status')?.textContent === 'live');
    const before = await page.$$eval('#timeline li', (items) => items.length);
    expect(await page.$eval('#timeline', (t) => t.textContent ?? '')).toContain('echo one > one.txt');
    await page.evaluate(() => {
      (window as unknown as { marker: number }).marker = 42;
    });
    stack.ollama.release('two');
    // The second turn's tool call and its end arrive on the open page.
    await page.waitForFunction(
      () => {
        const text = document.getElementById('timeline')?.textContent ?? '';
        const at = text.indexOf('echo two > two.txt');
        return at !== -1 && text.indexOf('turn.finished', at) !== -1;
      },
      { timeout: 60_000 },
    );
    const text = await page.$eval('#timeline', (t) => t.textContent ?? '');
    expect(text).toContain('$ echo two > two.txt');
    expect(text).toContain('two.txt');
    expect(await page.$$eval('#timeline li', (items) => items.length)).toBeGreaterThan(before);
    // The same page: nothing reloaded it.
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    await shot('03-conversation-live');
  }, 90_000);

  it('fits a phone: one column, the actions reachable', async () => {
    await page.setViewport({ width: 390, height: 844, isMobile: true, deviceScaleFactor: 2 });
    await page.goto(convUrl());
    const columns = await page.$eval(
      'main',
      (m) => getComputedStyle(m).gridTemplateColumns.split(' ').length,
    );
    expect(columns).toBe(1);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(width).toBeLessThanOrEqual(390);
    expect(await page.$('button[data-action="kill"]')).not.toBeNull();
    await shot('04-phone');
    await page.setViewport({ width: 1280, height: 900 });
  }, 60_000);

  it('kills it: quarantined and recorded as the operator', async () => {
    await page.goto(convUrl());
    await page.type('input[name="reason"]', 'checking the console kill');
    await Promise.all([page.waitForNavigation(), page.click('button[data-action="kill"]')]);
    expect(await page.$eval('.flash', (f) => f.textContent)).toContain('Killed');
    expect(await page.$eval('#summary', (s) => s.textContent)).toContain('quarantined');
    const record = await new Quarantine(redis, instance).get(conversation);
    expect(record).toMatchObject({ reason: 'checking the console kill', by: `admin:console:${OPERATOR}` });
    const events = await auditEvents((e) => e.some((x) => x.kind === 'sandbox.kill'));
    expect(events.find((e) => e.kind === 'sandbox.quarantine')).toMatchObject({
      actor: `admin:console:${OPERATOR}`,
      data: { reason: 'checking the console kill' },
    });
    // The worker whose engine had the sandbox SIGKILLed it, on the console's word.
    expect(events.find((e) => e.kind === 'sandbox.kill')?.data).toMatchObject({
      by: `admin:console:${OPERATOR}`,
      killed: true,
    });
    await shot('05-killed');
  }, 60_000);

  it('approves a pending request with its button', async () => {
    const approvals = new ApprovalStore(redis, instance);
    const request = await approvals.create({
      conversation,
      platform: 'web',
      route: {},
      kind: 'network',
      target: 'docs.python.org',
      reason: 'to read the <script>alert(1)</script> docs',
      turnId: `${conversation}#9`,
      timeoutSeconds: 600,
    });
    await page.goto(`${stack.url}/console`);
    const card = `[data-approval="${request.id}"]`;
    expect(await page.$eval(`${card} .reason`, (r) => r.textContent)).toContain('<script>alert(1)</script>');
    await shot('06-approval');
    await Promise.all([page.waitForNavigation(), page.click(`${card} button[data-decision="approve"]`)]);
    expect(await page.$eval('.flash', (f) => f.textContent)).toContain('Approved');
    expect(await page.$(card)).toBeNull();
    expect(await approvals.get(request.id)).toMatchObject({
      status: 'approved',
      scope: 'conversation',
      decidedBy: `admin:console:${OPERATOR}`,
      decidedByName: OPERATOR,
    });
    const events = await auditEvents((e) => e.some((x) => x.kind === 'approval.decided'));
    expect(events.find((e) => e.kind === 'approval.decided')).toMatchObject({
      actor: `admin:console:${OPERATOR}`,
      data: { approval: request.id, status: 'approved', target: 'docs.python.org' },
    });
  }, 60_000);
});
