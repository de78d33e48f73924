import { request } from 'node:http';

export interface ConsoleResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One plain HTTP request with exactly these headers (fetch would add or refuse Origin and Cookie). */
export function consoleRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; form?: Record<string, string> } = {},
): Promise<ConsoleResponse> {
  const body = options.form ? new URLSearchParams(options.form).toString() : undefined;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? (body === undefined ? 'GET' : 'POST'),
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
          ...options.headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Signs in; the session cookie (name=value) and the CSRF token the overview page carries. */
export async function signIn(
  base: string,
  token: string,
  name: string,
): Promise<{ cookie: string; csrf: string; origin: string }> {
  const origin = new URL(base).origin;
  const login = await consoleRequest(`${base}/console/login`, {
    headers: { origin },
    form: { token, name },
  });
  if (login.status !== 303) throw new Error(`sign-in answered ${login.status}: ${login.body.slice(0, 300)}`);
  const setCookie = String(login.headers['set-cookie'] ?? '');
  const cookie = setCookie.split(';')[0] ?? '';
  const page = await consoleRequest(`${base}/console`, { headers: { cookie } });
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)?.[1];
  if (!csrf) throw new Error('no CSRF token on the overview page');
  return { cookie, csrf, origin };
}
