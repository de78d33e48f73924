import type { IncomingMessage, ServerResponse } from 'node:http';

/** Helpers for the fake Discord's HTTP side: bodies (JSON or multipart), answers, injected failures. */

export interface RecordedRequest {
  method: string;
  path: string;
  /** The JSON body, or a multipart request's `payload_json`. */
  body: unknown;
  files: { name: string; data: Buffer }[];
  authorization?: string;
  at: number;
}

export interface InjectedFailure {
  method: string;
  path: RegExp;
  status: number;
  /** For 429: seconds, sent as `Retry-After` and `retry_after`. */
  retryAfter?: number;
  /** Discord's JSON error code in the body. */
  code?: number;
}

export async function readRequest(req: IncomingMessage): Promise<Omit<RecordedRequest, 'path' | 'at'>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  const method = req.method ?? 'GET';
  const authorization = req.headers.authorization;
  const type = req.headers['content-type'] ?? '';
  if (type.startsWith('multipart/form-data')) {
    // Node's fetch Request parses multipart bodies, as Discord would.
    const form = await new Request('http://fake.invalid/', {
      method: 'POST',
      headers: { 'content-type': type },
      body: raw,
    }).formData();
    const files: RecordedRequest['files'] = [];
    let body: unknown;
    for (const [key, value] of form.entries()) {
      if (key === 'payload_json' && typeof value === 'string') body = JSON.parse(value);
      else if (typeof value !== 'string')
        files.push({ name: value.name, data: Buffer.from(await value.arrayBuffer()) });
    }
    return { method, body, files, authorization };
  }
  const text = raw.toString('utf8');
  return { method, body: text === '' ? undefined : JSON.parse(text), files: [], authorization };
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** 204 without a content type: with `application/json` @discordjs/rest tries to parse the empty body. */
export function sendNoContent(res: ServerResponse) {
  res.writeHead(204);
  res.end();
}

export function sendFailure(res: ServerResponse, failure: InjectedFailure) {
  if (failure.status === 429) {
    const after = failure.retryAfter ?? 1;
    return sendJson(
      res,
      429,
      { message: 'You are being rate limited.', retry_after: after, global: false },
      {
        'retry-after': String(after),
        'x-ratelimit-limit': '5',
        'x-ratelimit-remaining': '0',
        'x-ratelimit-reset-after': String(after),
        'x-ratelimit-bucket': 'fake-bucket',
        'x-ratelimit-scope': 'user',
      },
    );
  }
  return sendJson(res, failure.status, {
    message: `fake failure ${failure.status}`,
    code: failure.code ?? 0,
  });
}

export function discordError(res: ServerResponse, status: number, code: number, message: string) {
  sendJson(res, status, { message, code });
}
