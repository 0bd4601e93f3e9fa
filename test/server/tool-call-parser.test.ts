// The tool-call parser over replies in each family's format, fed whole and in every chunking from one
// character up: the calls (their arguments compared through JSON.parse), the content around them, and the
// streamed events (a call announced once, before its argument fragments, which add up to its arguments).
import { describe, expect, it } from 'vitest';
import { scanObject } from '../../src/server/tools/json-scan.js';
import { ToolCallParser, type ToolCallEvent } from '../../src/server/tools/tool-call-parser.js';
import { detectToolFormat, TOOL_FORMATS, type ToolFormatName } from '../../src/server/tools/tool-formats.js';

const names = new Set(['weather', 'add']);

function run(format: ToolFormatName, text: string, chunk: number) {
  const p = new ToolCallParser(TOOL_FORMATS[format], names);
  const events: ToolCallEvent[] = [];
  for (let i = 0; i < text.length; i += chunk) events.push(...p.push(text.slice(i, i + chunk)));
  events.push(...p.finish());
  return { p, events };
}

interface Case {
  format: ToolFormatName;
  text: string;
  content: string;
  calls: Array<{ name: string; args: unknown }>;
}

const cases: Case[] = [
  {
    format: 'hermes',
    text: 'Sure. <tool_call>\n{"name": "weather", "arguments": {"city": "Pa\\"ris {x}", "unit": "c"}}\n</tool_call>\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": -2.5e3}}\n</tool_call> Done <tool',
    content: 'Sure. \n Done <tool',
    calls: [
      { name: 'weather', args: { city: 'Pa"ris {x}', unit: 'c' } },
      { name: 'add', args: { a: 1, b: -2500 } },
    ],
  },
  { format: 'hermes', text: 'No calls < tool_call> at all', content: 'No calls < tool_call> at all', calls: [] },
  { format: 'hermes', text: '<tool_call>not json</tool_call>', content: '<tool_call>not json</tool_call>', calls: [] },
  {
    format: 'llama3_json',
    text: ' {"name": "add", "parameters": {"a": 1, "b": 2}}; {"name": "weather", "parameters": {"city": "X", "unit": "f"}}',
    content: '',
    calls: [
      { name: 'add', args: { a: 1, b: 2 } },
      { name: 'weather', args: { city: 'X', unit: 'f' } },
    ],
  },
  {
    format: 'llama3_json',
    text: '<|python_tag|>{"name": "add", "parameters": {"a": [1, {"b": "}"}], "b": 0}}',
    content: '',
    calls: [{ name: 'add', args: { a: [1, { b: '}' }], b: 0 } }],
  },
  {
    format: 'llama3_json',
    text: 'Once upon a time {"name": "add"}',
    content: 'Once upon a time {"name": "add"}',
    calls: [],
  },
  {
    format: 'mistral',
    text: '[TOOL_CALLS][{"name": "add", "arguments": {"a": 1, "b": 2}}, {"name": "weather", "arguments": {"city": "Y", "unit": "c"}}]',
    content: '',
    calls: [
      { name: 'add', args: { a: 1, b: 2 } },
      { name: 'weather', args: { city: 'Y', unit: 'c' } },
    ],
  },
  {
    format: 'mistral',
    text: '[{"name": "add", "arguments": {"a": 3, "b": 4}}]',
    content: '',
    calls: [{ name: 'add', args: { a: 3, b: 4 } }],
  },
  { format: 'mistral', text: 'The [list] of things', content: 'The [list] of things', calls: [] },
];

describe('ToolCallParser', () => {
  for (const c of cases) {
    it(`${c.format}: ${JSON.stringify(c.text).slice(0, 60)}`, () => {
      for (const chunk of [1, 2, 3, 7, 1000]) {
        const { p, events } = run(c.format, c.text, chunk);
        const content = events.flatMap((e) => (e.type === 'content' ? [e.text] : [])).join('');
        expect(content, `chunk ${chunk}`).toBe(c.content);
        expect(p.closedCalls.map((x) => ({ name: x.name, args: JSON.parse(x.arguments) }))).toEqual(c.calls);
        expect(p.closedCalls.every((x) => x.valid)).toBe(true);
        // Streamed: each call announced once, before its fragments, which add up to its arguments.
        const announced: number[] = [];
        const streamed = new Map<number, string>();
        for (const e of events) {
          if (e.type === 'call') {
            expect(announced).not.toContain(e.index);
            announced.push(e.index);
            expect(e.id).toMatch(/^call_[0-9a-f]{24}$/);
          } else if (e.type === 'arguments') {
            expect(announced).toContain(e.index);
            streamed.set(e.index, (streamed.get(e.index) ?? '') + e.text);
          }
        }
        expect(announced).toEqual(c.calls.map((_, i) => i));
        p.closedCalls.forEach((x, i) => {
          expect(streamed.get(i)).toBe(x.arguments);
        });
      }
    });
  }

  it('a call of an unknown tool, or with arguments that are no object, is not valid', () => {
    const { p } = run(
      'hermes',
      '<tool_call>{"name": "rm", "arguments": {}}</tool_call><tool_call>{"name": "add", "arguments": 3}</tool_call>',
      4,
    );
    expect(p.closedCalls.map((c) => c.valid)).toEqual([false, false]);
  });

  it('a call cut by the length limit stays open', () => {
    const { p } = run('hermes', '<tool_call>{"name": "add", "arguments": {"a": 1, "b"', 5);
    expect(p.calls).toHaveLength(1);
    expect(p.closedCalls).toHaveLength(0);
  });
});

describe('scanObject', () => {
  it('finds members and their value ranges as the object grows', () => {
    const s = '{"name": "add", "arguments": {"a": "x}", "b": [1, 2]}, "n": -1.5}';
    const whole = scanObject(s, 0);
    expect(whole.end).toBe(s.length);
    expect(whole.members.map((m) => [m.key, JSON.parse(s.slice(m.start, m.end))])).toEqual([
      ['name', 'add'],
      ['arguments', { a: 'x}', b: [1, 2] }],
      ['n', -1.5],
    ]);
    const part = scanObject(s.slice(0, 40), 0);
    expect(part.end).toBe(-1);
    expect(part.members.map((m) => [m.key, m.end])).toEqual([
      ['name', 14],
      ['arguments', -1],
    ]);
    expect(scanObject('{"a" 1}', 0).broken).toBe(true);
  });
});

describe('detectToolFormat', () => {
  it('from the markers a chat template writes', () => {
    expect(detectToolFormat('{% for tool in tools %}<tool_call>{% endfor %}')).toBe('hermes');
    expect(detectToolFormat('{{ "[TOOL_CALLS]" }}{{ tools }}')).toBe('mistral');
    expect(
      detectToolFormat('<|start_header_id|>ipython<|end_header_id|>{"name": ..., "parameters": ...}<|python_tag|>'),
    ).toBe('llama3_json');
    expect(detectToolFormat('{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}')).toBe('hermes');
  });
});
