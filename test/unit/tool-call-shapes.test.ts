import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatError,
  parseJsonSequence,
  readArguments,
  shapeAnswer,
  stripThinking,
} from '../../src/worker/broker/tool-call-shapes.js';

const OFFERED = ['bash', 'read_file', 'write_file', 'edit_file', 'list_files', 'weather'];
const shape = (content: string, extra: { thinking?: string; toolCalls?: unknown[] } = {}) =>
  shapeAnswer({ content, toolCalls: extra.toolCalls ?? [], thinking: extra.thinking }, OFFERED);
const call = (name: string, args: Record<string, unknown>) => ({ function: { name, arguments: args } });

describe('tool calls written in the text', () => {
  it('reads a Qwen/Hermes <tool_call> and takes it out of the text', () => {
    const shaped = shape(
      'Let me look.\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls -la"}}\n</tool_call>',
    );
    expect(shaped).toEqual({
      content: 'Let me look.',
      toolCalls: [call('bash', { command: 'ls -la' })],
      unreadable: [],
      thinking: '',
    });
  });

  it('reads several <tool_call> tags, an unclosed last one, and a ```json fence inside', () => {
    const shaped = shape(
      '<tool_call>{"name": "bash", "arguments": {"command": "a"}}</tool_call>\n' +
        '<tool_call>```json\n{"name": "read_file", "arguments": {"path": "x"}}\n```</tool_call>\n' +
        '<tool_call>{"name": "list_files", "arguments": {}}',
    );
    expect(shaped.toolCalls).toEqual([
      call('bash', { command: 'a' }),
      call('read_file', { path: 'x' }),
      call('list_files', {}),
    ]);
    expect(shaped.content).toBe('');
  });

  it('reads a Llama-style bare JSON call, with "parameters", and several of them', () => {
    expect(shape('{"name": "bash", "parameters": {"command": "pwd"}}').toolCalls).toEqual([
      call('bash', { command: 'pwd' }),
    ]);
    expect(shape('{"type": "function", "name": "bash", "parameters": {"command": "pwd"}}').toolCalls).toEqual(
      [call('bash', { command: 'pwd' })],
    );
    const several = shape(
      '{"name": "bash", "parameters": {"command": "a"}}; {"name": "weather", "parameters": {"city": "Oslo"}}',
    );
    expect(several.toolCalls).toEqual([call('bash', { command: 'a' }), call('weather', { city: 'Oslo' })]);
    expect(several.content).toBe('');
    expect(shape('[{"name": "bash", "arguments": {"command": "a"}}]').toolCalls).toHaveLength(1);
    expect(shape('```json\n{"name": "bash", "arguments": {"command": "a"}}\n```').toolCalls).toHaveLength(1);
  });

  it('parses arguments written as a JSON string, natively or in the text', () => {
    expect(shape('', { toolCalls: [{ function: { name: 'bash', arguments: '{"command":"ls"}' } }] })).toEqual(
      { content: '', toolCalls: [call('bash', { command: 'ls' })], unreadable: [], thinking: '' },
    );
    expect(
      shape('<tool_call>{"name": "bash", "arguments": "{\\"command\\": \\"ls\\"}"}</tool_call>').toolCalls,
    ).toEqual([call('bash', { command: 'ls' })]);
    expect(readArguments('')).toEqual({});
    expect(readArguments(null)).toEqual({});
    expect(readArguments('[1]')).toBeUndefined();
  });

  it('leaves ordinary JSON data alone: no call to a tool that was not offered, none without arguments', () => {
    for (const text of [
      '{"name": "Alice", "arguments": {"age": 3}}',
      '{"name": "bash"}',
      '{"result": 42}',
      '[1, 2, 3]',
      'The call looks like {"name": "bash", "arguments": {}} in JSON.',
    ]) {
      expect(shape(text)).toEqual({ content: text, toolCalls: [], unreadable: [], thinking: '' });
    }
  });

  it('reports calls that cannot be read, and takes the bad tag out of the text', () => {
    const broken = shape('Trying.<tool_call>{"name": "bash", "arguments": {"command": "ls"}</tool_call>');
    expect(broken.toolCalls).toEqual([]);
    expect(broken.unreadable).toEqual(['the text inside <tool_call> is not valid JSON']);
    expect(broken.content).toBe('Trying.');
    expect(shape('<tool_call>{"name": "curl", "arguments": {}}</tool_call>').unreadable).toEqual([
      '"curl" is not one of the tools offered',
    ]);
    expect(shape('<tool_call>{"arguments": {}}</tool_call>').unreadable).toHaveLength(1);
    expect(shape('{"name": "bash", "arguments": {"command": "ls"}').unreadable).toEqual([
      'the call to bash is not valid JSON',
    ]);
    expect(shape('{"name": "bash", "arguments": "ls -la"}').unreadable).toEqual([
      'the arguments of bash are not a JSON object',
    ]);
    expect(shape('', { toolCalls: [{ function: { arguments: {} } }, 'x'] }).unreadable).toHaveLength(2);
  });

  it('tells the model the exact format to use', () => {
    const text = formatError(['the text inside <tool_call> is not valid JSON'], OFFERED);
    expect(text).toContain('<tool_call>{"name": "bash", "arguments": {"command": "ls -la"}}</tool_call>');
    expect(text).toContain('bash, read_file, write_file, edit_file, list_files, weather');
    expect(text).toContain('not valid JSON');
  });
});

describe('thinking', () => {
  it('takes <think> blocks, an unclosed one and a leading …</think> out of the text, and keeps it apart', () => {
    expect(shape('<think>hmm, ls?</think>\n\nHello!')).toEqual({
      content: 'Hello!',
      toolCalls: [],
      unreadable: [],
      thinking: 'hmm, ls?',
    });
    expect(stripThinking('secret plan</think>Done.')).toEqual({ content: 'Done.', thinking: 'secret plan' });
    expect(stripThinking('Hi <think>still thinking')).toEqual({ content: 'Hi ', thinking: 'still thinking' });
    const both = shape('<think>a</think><tool_call>{"name":"bash","arguments":{"command":"x"}}</tool_call>', {
      thinking: 'field',
    });
    expect(both.thinking).toBe('field\na');
    expect(both.toolCalls).toEqual([call('bash', { command: 'x' })]);
    expect(both.content).toBe('');
  });

  it('does not read a call written inside the thinking', () => {
    const shaped = shape('<think>{"name": "bash", "arguments": {"command": "rm"}}</think>No.');
    expect(shaped.toolCalls).toEqual([]);
    expect(shaped.content).toBe('No.');
  });
});

describe('JSON sequences', () => {
  it('reads values one after another and refuses anything else', () => {
    expect(parseJsonSequence('{"a": "}"} [1], {"b": 2}')).toEqual([{ a: '}' }, [1], { b: 2 }]);
    expect(parseJsonSequence('{"a": 1} trailing')).toBeUndefined();
    expect(parseJsonSequence('{"a": 1')).toBeUndefined();
  });
});

describe('properties', () => {
  const name = fc.constantFrom(...OFFERED);
  const jsonValue = fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown);
  const args = fc.dictionary(
    fc.string({ minLength: 1, maxLength: 8 }).filter((k) => k !== '__proto__'),
    jsonValue,
    { maxKeys: 4 },
  );
  const generated = fc.array(fc.record({ name, args }), { minLength: 1, maxLength: 3 });
  const prose = fc.string({ maxLength: 40 }).filter((s) => !/[<{[]/.test(s) && s.trim() === s && s !== '');

  it('round-trips generated calls written as <tool_call> tags', () => {
    fc.assert(
      fc.property(
        generated,
        fc.option(prose, { nil: undefined }),
        fc.boolean(),
        (calls, before, asString) => {
          const tags = calls
            .map((c) => {
              const a = asString ? JSON.stringify(JSON.stringify(c.args)) : JSON.stringify(c.args);
              return `<tool_call>\n{"name": ${JSON.stringify(c.name)}, "arguments": ${a}}\n</tool_call>`;
            })
            .join('\n');
          const shaped = shape(before === undefined ? tags : `${before}\n${tags}`);
          expect(shaped.toolCalls).toEqual(calls.map((c) => call(c.name, c.args)));
          expect(shaped.unreadable).toEqual([]);
          expect(shaped.content).toBe(before ?? '');
        },
      ),
    );
  });

  it('round-trips generated calls written as bare JSON (arguments or parameters, ; or newline)', () => {
    fc.assert(
      fc.property(
        generated,
        fc.constantFrom('arguments', 'parameters'),
        fc.constantFrom('\n', '; '),
        (calls, key, sep) => {
          const text = calls.map((c) => JSON.stringify({ name: c.name, [key]: c.args })).join(sep);
          const shaped = shape(text);
          expect(shaped.toolCalls).toEqual(calls.map((c) => call(c.name, c.args)));
          expect(shaped.content).toBe('');
        },
      ),
    );
  });

  it('round-trips native calls with arguments as an object or a JSON string', () => {
    fc.assert(
      fc.property(generated, fc.boolean(), (calls, asString) => {
        const native = calls.map((c) => ({
          function: { name: c.name, arguments: asString ? JSON.stringify(c.args) : c.args },
        }));
        expect(shape('', { toolCalls: native }).toolCalls).toEqual(calls.map((c) => call(c.name, c.args)));
      }),
    );
  });

  it('never throws on arbitrary text and never makes a call to a tool that was not offered', () => {
    const fragments = fc.constantFrom(
      '<tool_call>',
      '</tool_call>',
      '<think>',
      '</think>',
      '{"name": "curl", "arguments": {}}',
      '{"name": "bash", "arguments": {"command": "x"}}',
      '{"name": ',
      '"arguments"',
      '{',
      '}',
      '[',
      ']',
      ';',
      '"',
      '\\',
      '```json\n',
    );
    const text = fc
      .array(fc.oneof(fragments, fc.string({ maxLength: 10 })), { maxLength: 12 })
      .map((p) => p.join(''));
    fc.assert(
      fc.property(
        text,
        fc.array(fc.anything(), { maxLength: 3 }),
        fc.option(fc.string(), { nil: undefined }),
        (content, toolCalls, thinking) => {
          const shaped = shapeAnswer({ content, toolCalls: [], thinking }, ['bash']);
          expect(shaped.toolCalls.every((c) => c.function.name === 'bash')).toBe(true);
          expect(shaped.content).not.toContain('<think>');
          expect(shaped.content).not.toContain('</think>');
          const withNative = shapeAnswer({ content, toolCalls, thinking }, ['bash']);
          for (const made of withNative.toolCalls) expect(typeof made.function.arguments).toBe('object');
        },
      ),
      { numRuns: 500 },
    );
  });
});
