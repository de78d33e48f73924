import type { AuditEvent } from '../../contracts/audit/events.js';
import { describeData } from '../../shared/audit/timeline.js';
import { type Html, html } from './html.js';

/** One timeline row's words, the same on the rendered page and in the live tail (which sets them as text). */
export interface EventView {
  seq: number;
  time: string;
  kind: string;
  actor: string;
  /** The kind's family (message, turn, model, tool, file, net, sandbox, policy, approval, …), for colour. */
  family: string;
  detail: string;
  /** A tool call's shell command in full (the detail shortens it). */
  command?: string;
}

const MAX_COMMAND = 4000;

export function eventView(event: AuditEvent): EventView {
  const args = (event.data as { args?: { command?: unknown } }).args;
  const command =
    event.kind.startsWith('tool.') && typeof args?.command === 'string'
      ? args.command.slice(0, MAX_COMMAND)
      : undefined;
  return {
    seq: event.seq,
    time: event.time.replace('T', ' ').replace(/\.\d+Z$|Z$/, ''),
    kind: event.kind,
    actor: event.actor,
    family: event.kind.split('.')[0] ?? event.kind,
    detail: describeData(event),
    ...(command ? { command } : {}),
  };
}

export function eventRow(view: EventView): Html {
  return html`<li class="fam-${view.family.replace(/[^a-z]/g, '')}" data-seq="${view.seq}"><span class="time mono">${view.time}</span><span><span class="kind">${view.kind}</span><br><span class="muted">${view.actor}</span></span><span class="detail">${view.detail}${
    view.command ? html`<br><code>$ ${view.command}</code>` : ''
  }</span></li>`;
}

/**
 * The live tail, as the page's one script: new events arrive on an EventSource and are added as text
 * (never as markup); a reconnect asks for what came after the last one shown.
 */
export const LIVE_TAIL_SCRIPT = `(() => {
  const list = document.getElementById('timeline');
  const status = document.getElementById('live-status');
  if (!list || !window.EventSource) return;
  let last = Number(list.dataset.last || '0');
  const span = (cls, text) => { const s = document.createElement('span'); s.className = cls; s.textContent = text; return s; };
  const add = (e) => {
    if (e.seq <= last) return;
    last = e.seq;
    const li = document.createElement('li');
    li.className = 'fam-' + String(e.family).replace(/[^a-z]/g, '');
    li.dataset.seq = String(e.seq);
    li.append(span('time mono', e.time));
    const who = document.createElement('span');
    who.append(span('kind', e.kind), document.createElement('br'), span('muted', e.actor));
    li.append(who);
    const detail = span('detail', e.detail);
    if (e.command) { detail.append(document.createElement('br')); const c = document.createElement('code'); c.textContent = '$ ' + e.command; detail.append(c); }
    li.append(detail);
    list.append(li);
  };
  let source;
  const open = () => {
    source = new EventSource(list.dataset.events + '?after=' + last);
    source.onopen = () => { status.textContent = 'live'; };
    source.onmessage = (m) => { try { add(JSON.parse(m.data)); } catch {} };
    source.onerror = () => { status.textContent = 'reconnecting…'; source.close(); setTimeout(open, 2000); };
  };
  open();
})();`;
