import type { Approval } from '../../contracts/approvals/approval.js';
import { approvalCard } from '../../contracts/approvals/approval-card.js';
import { ageText } from '../commands/task-board.js';
import type { ConversationDetail, ConversationRow, Overview } from './console-data.js';
import { type Html, html, pathPart } from './html.js';
import { formatShare, formatTime } from './layout.js';
import { eventRow, eventView } from './timeline-view.js';

/** The console's page bodies, pure: data in, escaped markup out. */

export interface Viewer {
  csrf: string;
  now: number;
}

const convUrl = (c: string) => `/console/conversations/${pathPart(c)}`;

function hidden(viewer: Viewer, back: string): Html {
  return html`<input type="hidden" name="csrf" value="${viewer.csrf}"><input type="hidden" name="back" value="${back}">`;
}

function stateBadge(row: ConversationRow): Html {
  return html`<span class="state state-${row.state}">${row.state}</span>`;
}

function ago(ms: number | undefined, now: number): string {
  return ms === undefined ? '—' : `${ageText(now - ms)}${now - ms >= 60_000 ? ' ago' : ''}`;
}

function conversationsSection(rows: ConversationRow[], now: number): Html {
  return html`<section class="wide" id="conversations"><h2>Conversations (${rows.length})</h2>${
    rows.length === 0
      ? html`<p class="muted">No conversations yet.</p>`
      : html`<div class="scroll"><table><thead><tr><th>Conversation</th><th>Platform</th><th>Channel</th><th>Owner</th><th>Last activity</th><th>State</th><th>Pending</th></tr></thead><tbody>${rows.map(
          (r) =>
            html`<tr data-conversation="${r.conversation}"><td><a class="mono" href="${convUrl(r.conversation)}">${r.conversation}</a></td><td>${r.platform}</td><td>${r.channel}</td><td>${r.owner ?? '—'}</td><td title="${formatTime(r.lastActivity)}">${ago(r.lastActivity, now)}</td><td>${stateBadge(r)}</td><td>${r.pending}</td></tr>`,
        )}</tbody></table></div>`
  }</section>`;
}

function sandboxesSection(workers: Overview['workers'], now: number): Html {
  return html`<section id="sandboxes"><h2>Live sandboxes</h2>${
    workers.length === 0
      ? html`<p class="muted">No worker has reported its sandboxes in the last half minute.</p>`
      : workers.map(
          (w) =>
            html`<h3 class="mono">${w.worker} <span class="muted">(reported ${ago(w.at, now)})</span></h3>${
              w.sandboxes.length === 0
                ? html`<p class="muted">No sandboxes.</p>`
                : html`<div class="scroll"><table><thead><tr><th>Conversation</th><th>State</th><th>CPU</th><th>Memory</th><th>Disk</th></tr></thead><tbody>${w.sandboxes.map(
                    (s) =>
                      html`<tr data-sandbox="${s.conversation}"><td>${s.pooled ? html`<span class="muted">warm pool</span>` : html`<a class="mono" href="${convUrl(s.conversation)}">${s.conversation}</a>`}</td><td>${s.state}</td><td>${s.cpuPercent === undefined ? '—' : `${s.cpuPercent}%`}</td><td>${formatShare(s.memoryBytes, s.memoryLimitBytes)}</td><td>${formatShare(s.diskUsedBytes, s.diskTotalBytes)}</td></tr>`,
                  )}</tbody></table></div>`
            }`,
        )
  }</section>`;
}

/** An approval request with its three buttons (each a POST with the session's CSRF token). */
export function approvalBlock(approval: Approval, viewer: Viewer, back: string): Html {
  const card = approvalCard(approval);
  return html`<div class="card" data-approval="${approval.id}"><b>${card.title}</b>
<p class="reason">${card.reason}</p>
<p class="muted">Conversation <a class="mono" href="${convUrl(approval.conversation)}">${approval.conversation}</a> · expires ${formatTime(approval.expiresAtMs)}</p>
${card.outcome ? html`<p>${card.outcome}</p>` : ''}
${card.buttons.map(
  (b) =>
    html`<form class="inline" method="post" action="/console/approvals/${pathPart(approval.id)}/decide">${hidden(viewer, back)}<input type="hidden" name="decision" value="${b.decision}"><button type="submit" class="${b.style}" data-decision="${b.decision}">${b.label}</button></form> `,
)}</div>`;
}

function approvalsSection(approvals: Approval[], viewer: Viewer): Html {
  return html`<section id="approvals"><h2>Pending approvals (${approvals.length})</h2>${
    approvals.length === 0
      ? html`<p class="muted">Nothing waits for a decision.</p>`
      : approvals.map((a) => approvalBlock(a, viewer, '/console'))
  }</section>`;
}

function boardSection(board: Overview['board']): Html {
  return html`<section id="tasks"><h2>Task board</h2>${
    board.rows.length === 0
      ? html`<p class="muted">No open tasks.</p>`
      : html`<div class="scroll"><table><thead><tr><th></th><th>Task</th><th>Status</th><th>Owner</th><th>Age</th></tr></thead><tbody>${board.rows.map(
          (r) =>
            html`<tr><td>${r.icon}</td><td><a href="${convUrl(r.task.conversation)}">${r.task.title || r.task.conversation}</a></td><td>${r.status}</td><td>${r.task.owner.name ?? r.task.owner.id}</td><td>${r.age}</td></tr>`,
        )}</tbody></table></div>${board.more ? html`<p class="muted">and ${board.more} more</p>` : ''}`
  }</section>`;
}

function skillsSection(skills: Overview['pendingSkills']): Html {
  return html`<section id="skills"><h2>Skills pending approval</h2>${
    skills === undefined
      ? html`<p class="muted">No live worker reports its skills folder.</p>`
      : skills.length === 0
        ? html`<p class="muted">No skill waits for approval.</p>`
        : skills.map(
            (s) => html`<div class="card"><b class="mono">${s.ref}</b> — ${s.description}
<p class="muted">added ${s.addedAt} by ${s.addedBy}; scan: ${s.critical} critical, ${s.warnings} warning(s)</p>
<p>Next: <code>${s.next}</code></p></div>`,
          )
  }</section>`;
}

export function overviewBody(overview: Overview, viewer: Viewer): Html {
  return html`${conversationsSection(overview.conversations, viewer.now)}${approvalsSection(overview.approvals, viewer)}${sandboxesSection(overview.workers, viewer.now)}${boardSection(overview.board)}${skillsSection(overview.pendingSkills)}
<section class="wide muted">Metrics stay in Prometheus: <a href="/metrics">/metrics</a>.</section>`;
}

function actionForm(viewer: Viewer, back: string, action: string, inner: Html, button: Html): Html {
  return html`<form class="action" method="post" action="${back}/${action}">${hidden(viewer, back)}${inner}${button}</form>`;
}

function actionsSection(detail: ConversationDetail, viewer: Viewer, back: string): Html {
  const q = detail.row.quarantine;
  return html`<section id="actions"><h2>Actions</h2>
${actionForm(viewer, back, 'kill', html`<input type="text" name="reason" maxlength="500" placeholder="reason" aria-label="reason for the kill" required>`, html`<button class="danger" type="submit" data-action="kill">Kill</button>`)}
${q ? actionForm(viewer, back, 'release', html``, html`<button type="submit" data-action="release">Release from quarantine</button>`) : ''}
${actionForm(viewer, back, 'stop', html``, html`<button type="submit" data-action="stop">Stop the turn</button>`)}
${actionForm(viewer, back, 'reset', html``, html`<button type="submit" data-action="reset">Reset (wipe workspace and history)</button>`)}
${actionForm(viewer, back, 'grant', html`<input type="text" name="hosts" maxlength="1000" placeholder="pypi.org *.github.com:443" aria-label="hosts to grant" required>`, html`<button type="submit" data-action="grant">Grant hosts</button>`)}
<p>Network: ${detail.grants.length === 0 ? html`<span class="muted">none</span>` : ''}</p>
${detail.grants.map((g) => actionForm(viewer, back, 'revoke', html`<input type="hidden" name="host" value="${g}"><code>${g}</code>`, html`<button type="submit" data-action="revoke">Revoke</button>`))}
</section>`;
}

function summarySection(detail: ConversationDetail, now: number): Html {
  const { row, sandbox } = detail;
  return html`<section id="summary"><h2 class="mono">${row.conversation}</h2><table><tbody>
<tr><th>State</th><td>${stateBadge(row)}${row.quarantine ? html` <span class="reason">${row.quarantine.reason} (by ${row.quarantine.by}${row.quarantine.at ? ` at ${row.quarantine.at}` : ''})</span>` : ''}</td></tr>
<tr><th>Platform</th><td>${row.platform}</td></tr><tr><th>Channel</th><td>${row.channel}</td></tr>
<tr><th>Owner</th><td>${row.owner ?? '—'}</td></tr>
<tr><th>Last activity</th><td>${ago(row.lastActivity, now)} (${formatTime(row.lastActivity)})</td></tr>
<tr><th>Pending messages</th><td>${row.pending}</td></tr>
<tr><th>Sandbox</th><td>${sandbox ? html`${sandbox.state} on <span class="mono">${sandbox.worker}</span>: CPU ${sandbox.cpuPercent === undefined ? '—' : `${sandbox.cpuPercent}%`}, memory ${formatShare(sandbox.memoryBytes, sandbox.memoryLimitBytes)}, disk ${formatShare(sandbox.diskUsedBytes, sandbox.diskTotalBytes)}` : html`<span class="muted">none reported</span>`}</td></tr>
</tbody></table></section>`;
}

export function conversationBody(detail: ConversationDetail, viewer: Viewer): Html {
  const back = convUrl(detail.row.conversation);
  const last = detail.events.at(-1)?.seq ?? 0;
  return html`${summarySection(detail, viewer.now)}${actionsSection(detail, viewer, back)}${
    detail.approvals.length
      ? html`<section class="wide"><h2>Pending approvals</h2>${detail.approvals.map((a) => approvalBlock(a, viewer, back))}</section>`
      : ''
  }<section class="wide" id="audit"><h2>Audit timeline <span class="muted" id="live-status">(${detail.events.length} events)</span></h2>
<ol class="timeline" id="timeline" data-events="${back}/events" data-last="${last}">${detail.events.map((e) => eventRow(eventView(e)))}</ol></section>`;
}
