import { Redis } from 'ioredis';
import puppeteer from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { ApprovalAllowances } from '../../src/shared/stores/approval-allowances.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import {
  APPROVALS_TOKEN,
  approvalScript,
  approvalsClient,
  ask,
  cardIn as card,
  replyIn as reply,
} from '../helpers/approvals.js';
import { greeterSkill } from '../helpers/skill-fixtures.js';
import { registryOf, removeSkillVolumes, skillsDir, toolsOffered, vetSkill } from '../helpers/skill-stack.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';

/**
 * Approvals of skills and sub-agents end to end (real worker, sandboxes and Redis; the model scripted),
 * and the web chat page in a real browser (puppeteer-core driving the system's Chromium): the card's
 * words shown as text, its buttons deciding.
 */

const docker = createDocker(undefined);
const config = testConfig(testInstance('approvals-kinds'), {
  SANDBOT_API_TOKEN: APPROVALS_TOKEN,
  SANDBOT_WORKER_CONCURRENCY: '2',
  SANDBOT_DELEGATE_MAX_FANOUT: '1',
});
let stack: ScriptedStack;
const redis = new Redis(REDIS_URL);
const { events, send, decide } = approvalsClient(() => stack.url);
const TOKEN = APPROVALS_TOKEN;

beforeAll(async () => {
  // An admin-approved skill the agent may ask for.
  Object.assign(config, { SANDBOT_SKILLS_DIR: await skillsDir() });
  await vetSkill(registryOf(config), greeterSkill());
  stack = await startScriptedStack(config, approvalScript);
});

afterAll(async () => {
  await stack?.stop();
  await removeSkillVolumes(docker, config.SANDBOT_INSTANCE);
  redis.disconnect();
});

describe('approvals of skills and sub-agents, and the web chat page', () => {
  it('enables an admin-approved skill for the conversation once approved, from the next turn', async () => {
    const sse = await events('skill');
    try {
      await send('skill', ask({ kind: 'skill', skill: 'greeter', reason: 'to greet the team' }));
      const pending = await card(sse, 'pending');
      expect(pending.card.title).toBe('🔐 The agent asks to use the skill greeter');
      expect((await decide(pending.approval.id, 'approve')).status).toBe(200);
      expect(await reply(sse)).toContain(
        'approved by the web API (admin:web-api) for this conversation: Skill greeter@1.0.0 is enabled here from the next turn',
      );
      sse.events.length = 0;
      await send('skill', 'echo next-turn');
      expect(await reply(sse)).toContain('next-turn');
      expect(toolsOffered(stack.ollama.chatRequests(), 'echo next-turn')).toContain('greet');
    } finally {
      sse.close();
    }
  });

  it('lets one more sub-agent than SANDBOT_DELEGATE_MAX_FANOUT start after an approval', async () => {
    const sse = await events('deleg');
    try {
      await send('deleg', 'DELEGATE one two');
      const first = await reply(sse);
      expect(first).toContain('delegate: Sub-agent sub-1 answered:\nsub-agent done');
      expect(first).toContain('delegate: delegate refused: you have started 1 sub-agents');
      sse.events.length = 0;
      await send('deleg', 'DELEGATE three');
      expect(await reply(sse)).toContain('delegate refused: you have started 1 sub-agents');
      sse.events.length = 0;
      await send('deleg', ask({ kind: 'delegate', count: 1, reason: 'two sources to read at once' }));
      const pending = await card(sse, 'pending');
      expect(pending.card.title).toBe('🔐 The agent asks for 1 more sub-agent(s) than its limit');
      expect((await decide(pending.approval.id, 'approve_hour')).status).toBe(200);
      expect(await reply(sse)).toContain(
        'approved by the web API (admin:web-api) for 1 hour: you may start 1 more sub-agent(s) than the limit until',
      );
      const allowances = new ApprovalAllowances(redis, config.SANDBOT_INSTANCE);
      expect(await allowances.extraSubAgents(webConversationId('deleg'))).toBe(1);
      sse.events.length = 0;
      await send('deleg', 'DELEGATE four');
      const text = await reply(sse);
      expect(text).not.toContain('refused');
      expect(text).toMatch(/Sub-agent sub-\d+ answered:\nsub-agent done/);
    } finally {
      sse.close();
    }
  }, 240_000);

  it('shows the card in the web chat page, its words as text, and its buttons decide', async () => {
    const browser = await puppeteer.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu'],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`${stack.url}/`);
      await page.$eval('#token', (e, token) => ((e as HTMLInputElement).value = token), TOKEN);
      await page.$eval('#conversation', (e) => ((e as HTMLInputElement).value = 'browser'));
      await page.$eval('#user', (e) => ((e as HTMLInputElement).value = 'ana'));
      await page.click('#settings button[type=submit]');
      const reason = 'see <img src=x onerror="document.title=1"> here';
      await page.type('#text', ask({ kind: 'network', host: 'browser.example.test', reason }));
      await page.click('#send');
      await page.waitForSelector('.message.approval .buttons button', { timeout: 30_000 });
      const shown = await page.$eval('.message.approval', (e) => ({
        title: e.querySelector('.body')?.textContent,
        reason: e.querySelector('.reason')?.textContent,
        images: e.querySelectorAll('img').length,
        buttons: [...e.querySelectorAll('button')].map((b) => b.textContent),
      }));
      expect(shown).toEqual({
        title: '🔐 The agent asks for network access to browser.example.test',
        reason: `The agent's reason (its own words, not checked): “${reason}”`,
        images: 0,
        buttons: ['Approve for this conversation', 'Approve for 1 hour', 'Deny'],
      });
      await page.click('.message.approval button[data-decision=deny]');
      await page.waitForFunction(
        () => /Denied by ana \(web\)/.test(document.querySelector('.approval .outcome')?.textContent ?? ''),
        { timeout: 30_000 },
      );
      expect(await page.$$('.message.approval button')).toHaveLength(0);
      await page.waitForFunction(
        () =>
          [...document.querySelectorAll('.message.bot .body')].some((b) =>
            /denied by ana/.test(b.textContent ?? ''),
          ),
        { timeout: 30_000 },
      );
      expect(await page.title()).toBe('sandbot');
    } finally {
      await browser.close();
    }
  });
});
