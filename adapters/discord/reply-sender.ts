import type { FileRef } from '../../src/contracts/protocol/inbound.js';
import type { DeliveryOnce } from '../../src/gateway/delivery-once.js';
import type { BlobStore } from '../../src/shared/stores/blob-store.js';
import { type DiscordRoute, liveInteraction } from './conversation.js';
import type { DiscordApi, MessageBody, UploadFile } from './discord-api.js';
import { layoutReply } from './split.js';

/** Discord takes at most 10 attachments per message, and (without server boosts) 10 MiB in all. */
export const MAX_FILES_PER_MESSAGE = 10;
export const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;

/**
 * The messages a reply becomes: its text (split, or as reply.md when very long), then the files, grouped
 * so that no message carries more than Discord accepts. Files that can never fit get a note instead.
 */
export function planReply(text: string, files: UploadFile[], notes: string[]): MessageBody[] {
  const fitting: UploadFile[] = [];
  const lines = [...notes];
  for (const file of files) {
    if (file.data.length > MAX_UPLOAD_BYTES) {
      lines.push(`${file.name}: ${file.data.length} bytes is more than Discord accepts in one message`);
    } else fitting.push(file);
  }
  const body = lines.length ? `${text}\n\n${lines.map((l) => `(${l})`).join('\n')}`.trim() : text;
  const layout = layoutReply(body.trim() === '' && fitting.length === 0 ? '(no reply text)' : body);
  const parts: MessageBody[] =
    layout.kind === 'messages'
      ? layout.chunks.map((content) => ({ content }))
      : [{ content: layout.preview, files: [{ name: layout.fileName, data: Buffer.from(layout.content) }] }];
  for (const group of groupFiles(fitting)) {
    const last = parts.at(-1);
    const lastFiles = last?.files ?? [];
    const lastBytes = lastFiles.reduce((n, f) => n + f.data.length, 0);
    const groupBytes = group.reduce((n, f) => n + f.data.length, 0);
    if (
      last &&
      lastFiles.length + group.length <= MAX_FILES_PER_MESSAGE &&
      lastBytes + groupBytes <= MAX_UPLOAD_BYTES
    ) {
      last.files = [...lastFiles, ...group];
    } else parts.push({ content: '', files: group });
  }
  return parts;
}

function groupFiles(files: UploadFile[]): UploadFile[][] {
  const groups: UploadFile[][] = [];
  let group: UploadFile[] = [];
  let bytes = 0;
  for (const file of files) {
    if (group.length === MAX_FILES_PER_MESSAGE || bytes + file.data.length > MAX_UPLOAD_BYTES) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(file);
    bytes += file.data.length;
  }
  if (group.length) groups.push(group);
  return groups;
}

/**
 * Posts a reply (or an error) as one or more messages. Each message is a separate ledger entry, so a
 * retry after a failure in the middle posts only what is missing. With a live interaction the first
 * message edits the command's original response (an edit is idempotent anyway).
 */
export class ReplySender {
  constructor(
    private readonly api: DiscordApi,
    private readonly ledger: DeliveryOnce,
    private readonly blobs: BlobStore,
  ) {}

  async send(
    eventId: string,
    route: DiscordRoute,
    text: string,
    fileRefs: readonly FileRef[] = [],
  ): Promise<void> {
    const { files, notes } = await this.load(fileRefs);
    const parts = planReply(text, files, notes);
    const interaction = liveInteraction(route, Date.now());
    for (const [index, part] of parts.entries()) {
      await this.ledger.once(`${eventId}#${index}`, async () => {
        if (index === 0 && interaction) await this.api.editOriginal(interaction, part);
        else await this.api.postMessage(route.channelId, part);
      });
    }
  }

  private async load(refs: readonly FileRef[]): Promise<{ files: UploadFile[]; notes: string[] }> {
    const files: UploadFile[] = [];
    const notes: string[] = [];
    for (const ref of refs) {
      const data = await this.blobs.get(ref.blobKey);
      if (data === null) notes.push(`${ref.name} expired before it could be sent`);
      else files.push({ name: ref.name, data });
    }
    return { files, notes };
  }
}
