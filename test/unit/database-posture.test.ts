import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/contracts/config/load.js';
import { postureFindings } from '../../src/shared/posture/posture.js';

// The audit database in the posture report: a URL without a password, or beyond loopback in clear text.

const judge = (url?: string) =>
  postureFindings(
    parseConfig({ SANDBOT_API_TOKEN: 'x'.repeat(32), ...(url ? { SANDBOT_DATABASE_URL: url } : {}) }),
  )
    .filter((f) => f.setting === 'SANDBOT_DATABASE_URL')
    .map((f) => [f.severity, f.what]);

describe('the audit database’s posture', () => {
  it('finds nothing without a database, or with a password over loopback or a socket', () => {
    expect(judge()).toEqual([]);
    expect(judge('postgresql://sandbot:pw@127.0.0.1:5432/sandbot')).toEqual([]);
    expect(judge('postgres://sandbot:pw@localhost/sandbot')).toEqual([]);
    expect(judge('postgresql://sandbot:pw@/sandbot?host=/run/postgresql')).toEqual([]);
  });

  it('names a URL without a password, high beyond loopback', () => {
    expect(judge('postgresql://sandbot@127.0.0.1/sandbot')).toEqual([
      ['medium', expect.stringMatching(/without a password: whoever may connect as its role can rewrite/)],
    ]);
    expect(judge('postgresql:///sandbot?host=/run/postgresql')).toEqual([
      ['medium', expect.stringMatching(/without a password/)],
    ]);
    expect(judge('postgresql://sandbot@db.internal/sandbot?sslmode=verify-full').map(([s]) => s)).toEqual([
      'high',
    ]);
  });

  it('names a remote database without TLS; sslmode=require or verify-* is TLS, prefer is not', () => {
    expect(judge('postgresql://sandbot:pw@10.0.0.5:5432/sandbot')).toEqual([
      [
        'medium',
        'the audit database is at 10.0.0.5, beyond loopback, without TLS: events and the password cross the network in clear',
      ],
    ]);
    expect(judge('postgresql://sandbot:pw@10.0.0.5/sandbot?sslmode=prefer')).toHaveLength(1);
    expect(judge('postgresql://sandbot:pw@10.0.0.5/sandbot?sslmode=require')).toEqual([]);
    expect(judge('postgresql://sandbot:pw@db.internal/sandbot?sslmode=verify-full')).toEqual([]);
  });
});
