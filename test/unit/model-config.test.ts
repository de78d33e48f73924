import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/contracts/config/load.js';

describe('model provider settings', () => {
  it('defaults to Ollama, with no URL or key', () => {
    const config = parseConfig({});
    expect(config.SANDBOT_MODEL_PROVIDER).toBe('ollama');
    expect(config.SANDBOT_MODEL_URL).toBeUndefined();
    expect(config.SANDBOT_MODEL_API_KEY).toBeUndefined();
  });

  it('needs SANDBOT_MODEL_URL with the openai provider, and says so', () => {
    expect(() => parseConfig({ SANDBOT_MODEL_PROVIDER: 'openai' })).toThrow(ConfigError);
    expect(() => parseConfig({ SANDBOT_MODEL_PROVIDER: 'openai' })).toThrow(
      /^config: SANDBOT_MODEL_URL is missing: SANDBOT_MODEL_PROVIDER=openai needs the base URL/,
    );
    const config = parseConfig({
      SANDBOT_MODEL_PROVIDER: 'openai',
      SANDBOT_MODEL_URL: 'http://gpu-box:8000/v1',
      SANDBOT_MODEL_API_KEY: 'sk-1',
    });
    expect(config).toMatchObject({
      SANDBOT_MODEL_URL: 'http://gpu-box:8000/v1',
      SANDBOT_MODEL_API_KEY: 'sk-1',
    });
  });

  it('refuses an unknown provider and a URL that is not one, naming the setting', () => {
    expect(() => parseConfig({ SANDBOT_MODEL_PROVIDER: 'vllm' })).toThrow(
      /^config: SANDBOT_MODEL_PROVIDER is "vllm"/,
    );
    expect(() => parseConfig({ SANDBOT_MODEL_PROVIDER: 'openai', SANDBOT_MODEL_URL: 'gpu-box' })).toThrow(
      /^config: SANDBOT_MODEL_URL is "gpu-box"/,
    );
  });

  it('an empty key is no key (no Authorization header)', () => {
    const config = parseConfig({
      SANDBOT_MODEL_PROVIDER: 'openai',
      SANDBOT_MODEL_URL: 'http://gpu-box:8000/v1',
      SANDBOT_MODEL_API_KEY: '',
    });
    expect(config.SANDBOT_MODEL_API_KEY).toBeUndefined();
  });
});
