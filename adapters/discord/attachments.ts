import { FileRef } from '../../src/contracts/protocol/inbound.js';
import type { BlobStore } from '../../src/shared/stores/blob-store.js';
import type { DiscordAttachment } from './payloads.js';

/** Discord serves attachments from its CDN; a fake or proxy set with DISCORD_API_URL serves its own. */
const DISCORD_FILE_HOSTS = ['cdn.discordapp.com', 'media.discordapp.net'];

/** Whether the adapter may fetch an attachment URL (not any address a payload could name). */
export function attachmentUrlAllowed(url: string, apiUrl: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (parsed.protocol === 'https:' && DISCORD_FILE_HOSTS.includes(parsed.hostname)) return true;
  return parsed.origin === new URL(apiUrl).origin;
}

/** A file name safe for /workspace/inbox: no path, no control characters, at most 255 characters. */
export function safeFileName(name: string): string {
  const base = name.split(/[/\\]/).pop() ?? '';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  const clean = base.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  const name255 = clean.slice(0, 255);
  return name255 === '' || name255 === '.' || name255 === '..' ? 'file' : name255;
}

export interface TakenFiles {
  files: FileRef[];
  /** One line per attachment left out, for the agent to read (e.g. "report.pdf: 12 MB is over …"). */
  skipped: string[];
}

const MAX_FILES = 20;

/**
 * Downloads a message's attachments into the blob store, each at most `maxBytes` (checked against the
 * size Discord states and again while reading, since the stated size is only a claim).
 */
export async function takeAttachments(
  attachments: readonly DiscordAttachment[],
  options: { blobs: BlobStore; maxBytes: number; apiUrl: string; timeoutMs?: number },
): Promise<TakenFiles> {
  const taken: TakenFiles = { files: [], skipped: [] };
  for (const attachment of attachments) {
    const name = uniqueName(safeFileName(attachment.filename), taken.files);
    if (taken.files.length >= MAX_FILES) {
      taken.skipped.push(`${name}: only ${MAX_FILES} files are taken from one message`);
    } else if (attachment.size > options.maxBytes) {
      taken.skipped.push(`${name}: ${attachment.size} bytes is over the ${options.maxBytes}-byte limit`);
    } else if (!attachmentUrlAllowed(attachment.url, options.apiUrl)) {
      taken.skipped.push(`${name}: not served by Discord`);
    } else {
      const bytes = await download(attachment.url, options.maxBytes, options.timeoutMs ?? 30_000);
      if (bytes === null) {
        taken.skipped.push(`${name}: larger than the ${options.maxBytes}-byte limit`);
        continue;
      }
      const blobKey = await options.blobs.put(bytes);
      taken.files.push(FileRef.parse({ name, size: bytes.length, blobKey }));
    }
  }
  return taken;
}

/** Two attachments with one name would overwrite each other in the inbox: "a.txt", "a-2.txt". */
function uniqueName(name: string, files: readonly FileRef[]): string {
  const taken = new Set(files.map((f) => f.name));
  if (!taken.has(name)) return name;
  const dot = name.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
  for (let n = 2; ; n++) {
    const candidate = `${stem}-${n}${ext}`;
    if (!taken.has(candidate)) return candidate;
  }
}

/** The body, or null when it exceeds `maxBytes`. Throws on HTTP errors, so the caller can retry. */
async function download(url: string, maxBytes: number, timeoutMs: number): Promise<Buffer | null> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok || !response.body) {
    throw new Error(`downloading a Discord attachment failed: HTTP ${response.status}`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body) {
    total += chunk.length;
    // Leaving the loop cancels the download.
    if (total > maxBytes) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
