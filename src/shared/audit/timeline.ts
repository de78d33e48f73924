import type { AuditEvent } from '../../contracts/audit/events.js';
import { canonicalJson } from './chain.js';

/** One readable line per event, for `sandbot audit show` and `tail`. */
export function timelineLine(event: AuditEvent): string {
  const turn = event.turnId ? ` [${shortTurn(event.turnId)}]` : '';
  return `${event.time}  #${event.seq}  ${event.kind.padEnd(16)} ${event.actor}${turn}  ${describeData(event)}`;
}

/** The timeline, each reply's whole text under its line: what the user read, not only that one came. */
export function formatTimeline(events: AuditEvent[]): string {
  const head = events[0]
    ? `conversation ${events[0].conversation}, ${events.length} events\n`
    : 'no events\n';
  return head + events.map((e) => `${timelineLine(e)}\n${replyBlock(e)}`).join('');
}

/** A reply's text, each line indented under its event ('' for other events). */
function replyBlock(event: AuditEvent): string {
  const text = event.kind === 'reply' ? event.data.text : undefined;
  if (typeof text !== 'string' || text === '') return '';
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  return `${lines.map((line) => `    │ ${visible(line)}`).join('\n')}\n`;
}

/** Control characters (tab aside) shown as \uXXXX, not obeyed: a reply must not drive the terminal. */
function visible(line: string): string {
  return Array.from(line, (c) => {
    const n = c.charCodeAt(0);
    const control = (n < 0x20 && n !== 0x09) || (n >= 0x7f && n <= 0x9f);
    return control ? `\\u${n.toString(16).padStart(4, '0')}` : c;
  }).join('');
}

/** The part of a turn id after the conversation id ("#3-4"), which the line already names. */
function shortTurn(turnId: string): string {
  const at = turnId.lastIndexOf('#');
  return at === -1 ? turnId : turnId.slice(at);
}

/** What an event says, in one line (its kind, actor and time aside). */
export function describeData(event: AuditEvent): string {
  const d = event.data as Record<string, unknown>;
  const s = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
  const one = (text: string, max = 120) => {
    const flat = text.replace(/\s+/g, ' ').trim();
    return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
  };
  switch (event.kind) {
    case 'message.received':
      return `${d.command ? `/${s(d.command)} ` : ''}${s(d.chars)} chars${
        Array.isArray(d.files) && d.files.length ? `, ${d.files.length} files` : ''
      }${d.text ? `: ${one(s(d.text))}` : ''}`;
    case 'reply': {
      const files = Array.isArray(d.files) && d.files.length ? `, ${d.files.length} files` : '';
      return `${s(d.chars)} chars${files}: ${one(s(d.text ?? ''), 80)}`;
    }
    case 'turn.started':
      return `${s(d.mode)}, ${s(d.messages)} message(s)`;
    case 'turn.finished':
      return `${s(d.outcome)} in ${s(d.durationMs)} ms: ${s(d.modelCalls)} model calls, ${s(d.toolCalls)} tool calls${
        d.error ? ` — ${one(s(d.error))}` : ''
      }`;
    case 'model.request':
      return `${s(d.model)}, ${s(d.messages)} messages`;
    case 'model.response':
      return d.ok
        ? `${s(d.model)} ${s(d.durationMs)} ms, tokens ${s(d.promptTokens ?? '?')}/${s(d.completionTokens ?? '?')}${
            Array.isArray(d.toolCalls) && d.toolCalls.length ? `, calls ${d.toolCalls.join(', ')}` : ''
          }`
        : `${s(d.model)} failed: ${one(s(d.error))}`;
    case 'model.context_folded':
      return `${s(d.folded)} oldest messages ${d.summarized ? `summarized (${s(d.summaryChars)} chars)` : 'left out'}, ${s(d.kept)} kept: ~${s(d.tokensBefore)} → ~${s(d.tokensAfter)} of ${s(d.contextTokens)} tokens${
        d.error ? ` — ${one(s(d.error))}` : ''
      }`;
    case 'tool.started':
      return `${s(d.name)} ${one(canonicalJson(d.args), 100)}`;
    case 'tool.call':
      return `${s(d.name)} ${one(canonicalJson(d.args), 100)} → ${
        d.interrupted
          ? 'interrupted (its worker stopped)'
          : d.reported
            ? `${d.ok ? 'ok' : 'failed'}: ${one(s(d.result ?? ''), 80)}`
            : 'no result'
      }`;
    case 'file.created':
    case 'file.changed':
    case 'file.deleted':
      return `${s(d.path)} (${s(d.size)} bytes${d.sha256 ? `, sha256 ${s(d.sha256).slice(0, 12)}…` : ''})`;
    case 'net.request':
      return `${d.allowed ? 'allowed' : 'refused'} ${s(d.host)}:${s(d.port)}${d.bytes !== undefined ? `, ${s(d.bytes)} bytes` : ''}${
        d.reason ? ` (${one(s(d.reason))})` : ''
      }`;
    default:
      return one(canonicalJson(d), 160);
  }
}

const CSV_COLUMNS = [
  'seq',
  'time',
  'conversation',
  'turnId',
  'actor',
  'kind',
  'data',
  'id',
  'prevHash',
  'hash',
];

/** RFC 4180 CSV, `data` as canonical JSON in one column. */
export function toCsv(events: AuditEvent[]): string {
  const cell = (value: unknown) => {
    const text = value === undefined ? '' : typeof value === 'string' ? value : canonicalJson(value);
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const rows = events.map((e) =>
    CSV_COLUMNS.map((column) => cell((e as unknown as Record<string, unknown>)[column])).join(','),
  );
  return `${[CSV_COLUMNS.join(','), ...rows].join('\r\n')}\r\n`;
}
