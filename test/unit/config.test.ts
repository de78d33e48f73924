import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/contracts/config/load.js';

describe('parseConfig', () => {
  it('gives defaults for an empty environment', () => {
    const config = parseConfig({});
    expect(config.SANDBOT_HTTP_PORT).toBe(8787);
    expect(config.SANDBOT_HTTP_HOST).toBe('127.0.0.1');
    expect(config.OLLAMA_HOST).toBe('http://127.0.0.1:11434');
    expect(config.SANDBOT_API_TOKEN).toBeUndefined();
  });

  it('coerces numbers and treats empty values as unset', () => {
    const config = parseConfig({ SANDBOT_HTTP_PORT: '9000', SANDBOT_API_TOKEN: '', SANDBOX_CPUS: '0.5' });
    expect(config.SANDBOT_HTTP_PORT).toBe(9000);
    expect(config.SANDBOX_CPUS).toBe(0.5);
    expect(config.SANDBOT_API_TOKEN).toBeUndefined();
  });

  it('stops on a wrong value with one line naming the variable and what it expects', () => {
    const attempt = () => parseConfig({ SANDBOT_HTTP_PORT: 'eighty' });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/^config: SANDBOT_HTTP_PORT is "eighty": .*Port of the gateway/);
    expect(() => parseConfig({ SANDBOT_REDIS_URL: 'not a url' })).toThrow(/SANDBOT_REDIS_URL/);
    expect(() => parseConfig({ SANDBOT_INSTANCE: 'Upper Case' })).toThrow(/SANDBOT_INSTANCE.*lowercase/);
    expect(() => parseConfig({ SANDBOT_LOG_LEVEL: 'loud' })).toThrow(/SANDBOT_LOG_LEVEL/);
  });

  it('ignores variables it does not know', () => {
    expect(() => parseConfig({ PATH: '/bin', SOMETHING_ELSE: 'x' })).not.toThrow();
  });
});
