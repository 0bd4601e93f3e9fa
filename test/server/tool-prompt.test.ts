// Tools into the prompt, rendered by the real chat-template engine (@huggingface/jinja): a template that
// renders tools gets `tools` and earlier calls' arguments as objects (what its `tojson` expects); one that
// does not (the demo's) gets kvserve's fallback in the messages themselves.
import { describe, expect, it } from 'vitest';
import { ChatTemplate, type TemplateMessage } from '../../src/tokenizer/chat-template.js';
import { TOOL_FORMATS } from '../../src/server/tools/tool-formats.js';
import { toolPrompt } from '../../src/server/tools/tool-prompt.js';
import { toolRequest } from '../../src/server/tools/tool-request.js';

const tools = toolRequest(
  [
    {
      type: 'function',
      function: {
        name: 'add',
        description: 'sum',
        parameters: { type: 'object', properties: { a: { type: 'integer' } } },
      },
    },
  ],
  'auto',
  undefined,
)!;
const history: TemplateMessage[] = [
  { role: 'user', content: 'Add 1' },
  {
    role: 'assistant',
    content: null,
    tool_calls: [{ id: 'c1', type: 'function', function: { name: 'add', arguments: '{"a": 1}' } }],
  },
  { role: 'tool', content: '1', tool_call_id: 'c1' },
];

describe('toolPrompt', () => {
  it('a template that renders tools gets them, and arguments as objects', () => {
    // In the manner of Qwen2.5's template: tools as JSON lines, calls with their arguments through tojson.
    const source =
      '{% for t in tools %}{{ t | tojson }}\n{% endfor %}{% for m in messages %}{{ m.role }}:' +
      '{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ {"name": c.function.name, "arguments": c.function.arguments} | tojson }}</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}\n{% endfor %}';
    const { messages, extra } = toolPrompt(history, tools, TOOL_FORMATS.hermes, true);
    const text = new ChatTemplate(source).render(messages, { addGenerationPrompt: false, extra });
    const lines = text.split('\n');
    expect(JSON.parse(lines[0]!)).toEqual({
      type: 'function',
      function: {
        name: 'add',
        description: 'sum',
        parameters: { type: 'object', properties: { a: { type: 'integer' } } },
      },
    });
    const call = /<tool_call>(.*)<\/tool_call>/.exec(text)![1]!;
    expect(JSON.parse(call)).toEqual({ name: 'add', arguments: { a: 1 } }); // not the string '{"a": 1}' again
    expect(text).toContain('tool:1');
  });

  it('the fallback writes the tools, the call and the result into the messages', () => {
    const demo =
      '{{ bos_token }}{% for m in messages %}{{ m["content"] }}{% if not loop.last %}\n{% endif %}{% endfor %}';
    const { messages, extra } = toolPrompt(history, tools, TOOL_FORMATS.hermes, false);
    expect(extra).toEqual({});
    expect(messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    const text = new ChatTemplate(demo, { bos_token: '<s>' }).render(messages, { addGenerationPrompt: true });
    const toolLine = text.split('\n').find((l) => l.startsWith('{'))!;
    expect(JSON.parse(toolLine)).toMatchObject({ name: 'add', description: 'sum' });
    expect(text).toContain('To call one, write <tool_call>');
    expect(text).toContain('<tool_call>\n{"name":"add","arguments":{"a":1}}\n</tool_call>');
    expect(text).toContain('<tool_response>\n1\n</tool_response>');
  });

  it('without tools (tool_choice none) the fallback still writes earlier calls, and no tool list', () => {
    const { messages } = toolPrompt(history, undefined, TOOL_FORMATS.llama3_json, false);
    expect(messages[0]!.role).toBe('user');
    expect(messages[1]!.content).toBe('{"name":"add","parameters":{"a":1}}');
  });
});
