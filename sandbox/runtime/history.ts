import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ChatMessage } from '../../src/contracts/protocol/agent.js';

const HISTORY_FILE = 'history.json';
/** A history file larger than this is treated as unreadable rather than loaded into memory. */
const MAX_HISTORY_FILE_BYTES = 64 * 1024 * 1024;

export type LoadedHistory = { messages: ChatMessage[]; problem?: string };

/** Reads `<session>/history.json`. Missing means a new conversation; unreadable is set aside. */
export function loadHistory(sessionDir: string): LoadedHistory {
  const file = path.join(sessionDir, HISTORY_FILE);
  let text: string;
  try {
    if (statSync(file).size > MAX_HISTORY_FILE_BYTES) return setAside(file, 'it is too large');
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { messages: [] };
    return { messages: [], problem: `the saved history could not be read (${(err as Error).message})` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return setAside(file, 'it is not valid JSON');
  }
  const parsed = z.array(ChatMessage).safeParse(json);
  if (!parsed.success) return setAside(file, 'it is not a list of chat messages');
  return { messages: parsed.data };
}

/** Keeps an unreadable history for inspection, out of the way of the next save. */
function setAside(file: string, why: string): LoadedHistory {
  const aside = `${file}.unreadable-${Date.now()}`;
  try {
    renameSync(file, aside);
  } catch {
    return { messages: [], problem: `the saved history is unreadable (${why})` };
  }
  return {
    messages: [],
    problem: `the saved history is unreadable (${why}); it was kept as ${path.basename(aside)}`,
  };
}

/**
 * Replaces the history atomically: write a temporary file, flush it, rename it over the old one.
 * Synchronous on purpose: nothing (a cancel, say) can interleave between the decision to save and
 * the save itself.
 */
export function saveHistory(sessionDir: string, messages: readonly ChatMessage[]): void {
  mkdirSync(sessionDir, { recursive: true });
  const file = path.join(sessionDir, HISTORY_FILE);
  const temp = `${file}.tmp-${process.pid}`;
  const fd = openSync(temp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(messages));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
}
