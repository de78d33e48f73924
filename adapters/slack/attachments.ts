import type { FileRef } from '../../src/contracts/protocol/inbound.js';
import type { BlobStore } from '../../src/shared/stores/blob-store.js';
import type { SlackFile } from './slack-event.js';
import { escapeForSlack } from './slack-text.js';

/** Files taken from one message at most (the inbound schema's own limit). */
export const MAX_FILES_PER_MESSAGE = 20;
const DOWNLOAD_TIMEOUT_MS = 60_000;

export interface Attachments {
  files: FileRef[];
  /** One line per file not taken, to tell the sender why. */
  notes: string[];
}

export interface DownloadOptions {
  botToken: string;
  apiUrl: string;
  maxBytes: number;
  blobs: Pick<BlobStore, 'put'>;
}

/**
 * Downloads a message's files into the blob store (the worker copies them into /workspace/inbox/).
 * The bot token goes only to Slack's own hosts; a file over the size cap is refused, not truncated.
 */
export async function downloadAttachments(
  slackFiles: SlackFile[],
  options: DownloadOptions,
): Promise<Attachments> {
  const result: Attachments = { files: [], notes: [] };
  const names = uniqueNames(slackFiles.map((f) => safeFileName(f.name ?? f.title, f.id)));
  for (const [index, file] of slackFiles.entries()) {
    const name = names[index] ?? file.id;
    // Notes quote the name back in Slack: escaped, so a file name cannot carry a mention.
    const shown = escapeForSlack(name);
    if (index >= MAX_FILES_PER_MESSAGE) {
      result.notes.push(`${shown}: only the first ${MAX_FILES_PER_MESSAGE} files of a message are taken.`);
      continue;
    }
    const outcome = await downloadOne(file, name, shown, options).catch(
      (error: unknown) =>
        `${shown}: the download failed (${error instanceof Error ? error.message : String(error)}).`,
    );
    if (typeof outcome === 'string') result.notes.push(outcome);
    else result.files.push(outcome);
  }
  return result;
}

async function downloadOne(
  file: SlackFile,
  name: string,
  shown: string,
  options: DownloadOptions,
): Promise<FileRef | string> {
  const { maxBytes } = options;
  const url = file.url_private_download ?? file.url_private;
  if (url === undefined || (file.mode !== undefined && file.mode !== 'hosted' && file.mode !== 'snippet')) {
    return `${shown}: Slack did not make this file available to me.`;
  }
  if (file.size !== undefined && file.size > maxBytes) return tooLarge(shown, file.size, maxBytes);
  if (!tokenMayGoTo(url, options.apiUrl))
    return `${shown}: it is not hosted by Slack, so I did not fetch it.`;
  const response = await fetch(url, {
    headers: { Authorization: `Bearer ${options.botToken}` },
    signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS),
  });
  if (!response.ok) {
    await response.body?.cancel();
    return `${shown}: Slack answered ${response.status} when I fetched it.`;
  }
  // Without the right token or scope, Slack answers 200 with its sign-in page instead of the file.
  if (
    response.headers.get('content-type')?.startsWith('text/html') &&
    !file.mimetype?.startsWith('text/html')
  ) {
    await response.body?.cancel();
    return `${shown}: Slack sent a sign-in page instead of the file (does the app have the files:read scope?).`;
  }
  const bytes = await readCapped(response, maxBytes);
  if (bytes === undefined) return tooLarge(shown, undefined, maxBytes);
  const blobKey = await options.blobs.put(bytes);
  return { name, size: bytes.length, blobKey };
}

/** The body, or undefined as soon as it grows past the cap (a size in the event may be wrong). */
async function readCapped(response: Response, maxBytes: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  if (!response.body) return Buffer.alloc(0);
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > maxBytes) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks);
}

function tooLarge(name: string, size: number | undefined, maxBytes: number): string {
  const actual = size === undefined ? 'larger than' : `${formatBytes(size)}, over`;
  return `${name}: it is ${actual} the ${formatBytes(maxBytes)} I take per file, so I left it out.`;
}

/** The bot token may go to the API's own host and Slack's file hosts, nowhere else. */
export function tokenMayGoTo(fileUrl: string, apiUrl: string): boolean {
  let file: URL;
  let api: URL;
  try {
    file = new URL(fileUrl);
    api = new URL(apiUrl);
  } catch {
    return false;
  }
  if (file.protocol !== api.protocol) return false;
  if (file.host === api.host) return true;
  return (
    file.protocol === 'https:' && (file.hostname === 'slack.com' || file.hostname.endsWith('.slack.com'))
  );
}

/** A name that is safe as a file name in /workspace/inbox (no paths, no control characters). */
export function safeFileName(name: string | undefined, fallback: string): string {
  const cleaned = (name ?? '')
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
    .replace(/[/\\\u0000-\u001f\u007f]/g, '_')
    .trim()
    .slice(0, 200);
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? `file-${fallback}`.slice(0, 200) : cleaned;
}

/** Two files called "image.png" become "image.png" and "image (2).png". */
export function uniqueNames(names: string[]): string[] {
  const seen = new Set<string>();
  return names.map((name) => {
    let candidate = name;
    for (let n = 2; seen.has(candidate); n += 1) {
      const dot = name.lastIndexOf('.');
      candidate = dot > 0 ? `${name.slice(0, dot)} (${n})${name.slice(dot)}` : `${name} (${n})`;
    }
    seen.add(candidate);
    return candidate;
  });
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1_048_576) return `${(bytes / 1_048_576).toFixed(bytes % 1_048_576 === 0 ? 0 : 1)} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} bytes`;
}
