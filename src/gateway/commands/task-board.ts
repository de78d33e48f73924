import { OPEN_STATUSES, type Task, type TaskStatus } from '../../contracts/tasks/task.js';

/**
 * The task board of a channel, pure: which tasks show, in which order, and how their status and age
 * read. The adapters render the rows in their platform's markup (links, mentions, times).
 */

export const STATUS_WORDS: Record<TaskStatus, string> = {
  queued: 'queued',
  running: 'running',
  waiting: 'waiting for input',
  done: 'done',
  failed: 'failed',
  killed: 'killed',
};

export const STATUS_ICONS: Record<TaskStatus, string> = {
  queued: '🕒',
  running: '⏳',
  waiting: '💬',
  done: '✅',
  failed: '❌',
  killed: '☠️',
};

const BOARD_ORDER: Record<TaskStatus, number> = {
  running: 0,
  queued: 1,
  waiting: 2,
  failed: 3,
  done: 4,
  killed: 4,
};

/** Closed tasks stay on the board this long after their last change. */
const SHOW_CLOSED_MS = 24 * 3600_000;
/** Rows shown at most; the rest are counted. */
export const BOARD_ROWS = 20;

export interface BoardRow {
  task: Task;
  status: string;
  icon: string;
  age: string;
}

export interface Board {
  rows: BoardRow[];
  /** Tasks left out beyond BOARD_ROWS. */
  more: number;
}

/**
 * Open tasks first (running, then queued, waiting, failed), newest first within each, then tasks
 * closed in the last day. Sub-agents are not listed: their parent's thread shows them.
 */
export function boardOf(tasks: readonly Task[], now: number): Board {
  const shown = tasks
    .filter((t) => t.depth === 0)
    .filter((t) => OPEN_STATUSES.includes(t.status) || now - Date.parse(t.updatedAt) < SHOW_CLOSED_MS)
    .sort((a, b) => {
      const byStatus = BOARD_ORDER[a.status] - BOARD_ORDER[b.status];
      return byStatus || Date.parse(b.createdAt) - Date.parse(a.createdAt);
    });
  return {
    rows: shown.slice(0, BOARD_ROWS).map((task) => ({
      task,
      status: STATUS_WORDS[task.status],
      icon: STATUS_ICONS[task.status],
      age: ageText(now - Date.parse(task.createdAt)),
    })),
    more: Math.max(0, shown.length - BOARD_ROWS),
  };
}

/** "just now", "5 min", "3 h", "2 d". */
export function ageText(ms: number): string {
  const minutes = Math.floor(Math.max(0, ms) / 60_000);
  if (minutes < 1) return 'just now';
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h`;
  return `${Math.floor(hours / 24)} d`;
}
