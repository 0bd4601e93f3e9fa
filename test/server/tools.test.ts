// Tool calling end to end on the real engine (stories260K, CPU) through the official `openai` client. The
// demo's template knows nothing of tools, so kvserve's fallback prompt (hermes format) is what it sees; a
// forced tool_choice must still give valid calls (arguments checked with ajv against the tool's schema), and
// the stream must carry them as OpenAI streams them.
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import type { ChatCompletionTool } from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServeHandle } from '../../src/server/serve-cli.js';
import { startStoriesServer } from './helpers/stories-server.js';

let server: ServeHandle;
let client: OpenAI;
const ajv = new Ajv({ strict: false });

beforeAll(async () => {
  server = await startStoriesServer();
  await server.ready;
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(() => server?.close());

// Small: the fallback prompt spells each tool out, and the demo's context is 512 tokens of a byte-level vocabulary.
const weatherParams = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 10 }, unit: { enum: ['c', 'f'] } },
  required: ['city', 'unit'],
};
const addParams = {
  type: 'object',
  properties: { a: { type: 'integer', minimum: 0, maximum: 99 }, b: { type: 'integer', minimum: 0, maximum: 99 } },
  required: ['a', 'b'],
};
const tools: ChatCompletionTool[] = [
  { type: 'function', function: { name: 'weather', parameters: weatherParams } },
  { type: 'function', function: { name: 'add', parameters: addParams } },
];
const validArgs: Record<string, ReturnType<typeof ajv.compile>> = {
  weather: ajv.compile(weatherParams),
  add: ajv.compile(addParams),
};
const messages = [{ role: 'user' as const, content: 'Hi' }];

function expectValidCall(call: { type: string; id: string; function: { name: string; arguments: string } }) {
  expect(call.type).toBe('function');
  expect(call.id).toMatch(/^call_[0-9a-f]{24}$/);
  const check = validArgs[call.function.name];
  expect(check, `unknown tool ${call.function.name}`).toBeDefined();
  const args = JSON.parse(call.function.arguments) as unknown;
  expect(check!(args), `${call.function.arguments}: ${ajv.errorsText(check!.errors)}`).toBe(true);
}

describe('forced calls', () => {
  it('tool_choice names a function: one valid call of it, finish_reason tool_calls', async () => {
    for (const [name, seed, temperature] of [
      ['add', 1, 0],
      ['weather', 2, 1],
      ['weather', 3, 1.3],
    ] as const) {
      const r = await client.chat.completions.create({
        model: 'stories260K',
        messages,
        tools,
        tool_choice: { type: 'function', function: { name } },
        temperature,
        seed,
        max_tokens: 120,
      });
      const choice = r.choices[0]!;
      expect(choice.finish_reason).toBe('tool_calls');
      expect(choice.message.content).toBeNull();
      expect(choice.message.tool_calls).toHaveLength(1);
      const call = choice.message.tool_calls![0]!;
      if (call.type !== 'function') throw new Error('not a function call');
      expect(call.function.name).toBe(name);
      expectValidCall(call);
    }
  });

  it('tool_choice required without parallel calls: one valid call of one of the tools', async () => {
    for (const seed of [4, 5]) {
      const r = await client.chat.completions.create({
        model: 'stories260K',
        messages,
        tools,
        tool_choice: 'required',
        parallel_tool_calls: false,
        temperature: 1,
        seed,
        max_tokens: 120,
      });
      expect(r.choices[0]!.finish_reason).toBe('tool_calls');
      expect(r.choices[0]!.message.tool_calls).toHaveLength(1);
      const call = r.choices[0]!.message.tool_calls![0]!;
      if (call.type === 'function') expectValidCall(call);
    }
  });

  it('streamed: the first delta of a call has index, id, type, name and arguments "", then fragments', async () => {
    const body = {
      model: 'stories260K',
      messages,
      tools,
      tool_choice: { type: 'function' as const, function: { name: 'weather' } },
      temperature: 0,
      max_tokens: 120,
    };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true });
    const deltas: Array<Record<string, unknown>> = [];
    let finish: string | null = null;
    let content = '';
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (!c) continue;
      content += c.delta.content ?? '';
      for (const tc of c.delta.tool_calls ?? []) deltas.push(tc as unknown as Record<string, unknown>);
      if (c.finish_reason) finish = c.finish_reason;
    }
    expect(finish).toBe('tool_calls');
    expect(content).toBe('');
    expect(deltas.length).toBeGreaterThan(2);
    const [first, ...rest] = deltas;
    expect(first).toEqual({
      index: 0,
      id: expect.stringMatching(/^call_/),
      type: 'function',
      function: { name: 'weather', arguments: '' },
    });
    for (const d of rest) {
      expect(Object.keys(d).sort()).toEqual(['function', 'index']);
      expect(d.index).toBe(0);
      expect(Object.keys(d.function as object)).toEqual(['arguments']);
    }
    const args = rest.map((d) => (d.function as { arguments: string }).arguments).join('');
    const call = whole.choices[0]!.message.tool_calls![0]!;
    if (call.type !== 'function') throw new Error('not a function call');
    expect(args).toBe(call.function.arguments); // greedy: the same call streamed and not
    expectValidCall({ type: 'function', id: first!.id as string, function: { name: 'weather', arguments: args } });
  });

  it('the stream helper of the client assembles the same calls', async () => {
    const runner = client.chat.completions.stream({
      model: 'stories260K',
      messages,
      tools,
      tool_choice: { type: 'function', function: { name: 'add' } },
      temperature: 0,
      max_tokens: 120,
    });
    const done = await runner.finalChatCompletion();
    const call = done.choices[0]!.message.tool_calls![0]!;
    if (call.type === 'function') expectValidCall(call);
    expect(done.choices[0]!.finish_reason).toBe('tool_calls');
  });
});

describe('auto and none', () => {
  it('auto: the story model writes no call, so the reply is content', async () => {
    const r = await client.chat.completions.create({
      model: 'stories260K',
      messages,
      tools,
      temperature: 0,
      max_tokens: 30,
    });
    expect(r.choices[0]!.message.tool_calls).toBeUndefined();
    expect(r.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(r.choices[0]!.finish_reason).toBe('length');
  });

  it('none: the tools are ignored (the prompt is the one without them)', async () => {
    const plain = await client.chat.completions.create({
      model: 'stories260K',
      messages,
      temperature: 0,
      max_tokens: 20,
    });
    const none = await client.chat.completions.create({
      model: 'stories260K',
      messages,
      tools,
      tool_choice: 'none',
      temperature: 0,
      max_tokens: 20,
    });
    expect(none.usage!.prompt_tokens).toBe(plain.usage!.prompt_tokens);
    expect(none.choices[0]!.message.content).toBe(plain.choices[0]!.message.content);
  });

  it('a conversation with an earlier call and its result renders and answers', async () => {
    const r = await client.chat.completions.create({
      model: 'stories260K',
      messages: [
        ...messages,
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'add', arguments: '{"a": 1, "b": 2}' } }],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '3' },
      ],
      tools,
      tool_choice: 'none',
      temperature: 0,
      max_tokens: 10,
    });
    expect(r.choices[0]!.message.content!.length).toBeGreaterThan(0);
  });
});

describe('bad tool requests are 400s naming the field', () => {
  it('shapes, unknown names, a schema xgrammar refuses, and a forced call with response_format', async () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ tools: [{ type: 'function', function: { name: 'bad name' } }] }, 'tools[0].function.name', /letters/],
      [
        { tools, tool_choice: { type: 'function', function: { name: 'nope' } } },
        'tool_choice.function.name',
        /not among/,
      ],
      [{ tool_choice: 'required' }, 'tool_choice', /needs tools/],
      [{ tools, tool_choice: 'sometimes' }, 'tool_choice', /must be/],
      [
        {
          tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'nonsense' } } }],
          tool_choice: 'required',
        },
        'tools',
        /Unsupported type "nonsense"/,
      ],
      [
        { tools, tool_choice: 'required', response_format: { type: 'json_object' } },
        'response_format',
        /cannot be combined/,
      ],
      [{ tools: [tools[0], tools[0]] }, 'tools[1].function.name', /used twice/],
    ];
    for (const [extra, param, message] of cases) {
      const r = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages, max_tokens: 5, ...extra }),
      });
      const j = (await r.json()) as { error: { param: string; message: string; type: string } };
      expect(r.status, JSON.stringify(extra)).toBe(400);
      expect(j.error.param).toBe(param);
      expect(j.error.message).toMatch(message);
    }
  });
});
