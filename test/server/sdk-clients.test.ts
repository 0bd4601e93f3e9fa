// Structured outputs and tool calls through the client libraries people use, against the real demo engine:
// the Vercel AI SDK (generateObject, generateText with tools, on its OpenAI chat model: .chat() calls
// /v1/chat/completions) and LangChain.js (withStructuredOutput, bindTools). Each result is checked with the
// library's own schema (zod) and with ajv, not just for the absence of errors.
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI } from '@langchain/openai';
import { generateObject, generateText, jsonSchema, tool } from 'ai';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { ServeHandle } from '../../src/server/serve-cli.js';
import { startStoriesServer } from './helpers/stories-server.js';

let server: ServeHandle;
const ajv = new Ajv2020({ strict: false });

beforeAll(async () => {
  server = await startStoriesServer();
  await server.ready;
});
afterAll(() => server?.close());

const Pet = z.object({ name: z.string().max(10), legs: z.number().int().min(0).max(8), friendly: z.boolean() });
const petSchema = z.toJSONSchema(Pet);
const validPet = ajv.compile(petSchema);

const weatherParams = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 10 }, unit: { enum: ['c', 'f'] } },
  required: ['city', 'unit'],
  additionalProperties: false,
} as const;
const validWeather = ajv.compile(weatherParams);

describe('Vercel AI SDK (@ai-sdk/openai chat model)', () => {
  const model = () => createOpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused' }).chat('stories260K');

  it('generateObject with a zod schema', async () => {
    for (const seed of [1, 2]) {
      const { object, finishReason } = await generateObject({
        model: model(),
        schema: Pet,
        prompt: 'A dog',
        temperature: 1,
        seed,
        maxOutputTokens: 200,
        maxRetries: 0,
      });
      expect(finishReason).toBe('stop');
      expect(Pet.safeParse(object).success).toBe(true);
      expect(validPet(object)).toBe(true);
    }
  });

  it('generateText with a tool the model must call', async () => {
    const { toolCalls, finishReason } = await generateText({
      model: model(),
      prompt: 'Weather?',
      tools: { weather: tool({ description: 'weather', inputSchema: jsonSchema(weatherParams) }) },
      toolChoice: { type: 'tool', toolName: 'weather' },
      temperature: 0,
      maxOutputTokens: 120,
      maxRetries: 0,
    });
    expect(finishReason).toBe('tool-calls');
    expect(toolCalls).toHaveLength(1);
    expect(toolCalls[0]!.toolName).toBe('weather');
    expect(validWeather(toolCalls[0]!.input), JSON.stringify(toolCalls[0]!.input)).toBe(true);
  });
});

describe('LangChain.js (@langchain/openai)', () => {
  const chat = () =>
    new ChatOpenAI({
      model: 'stories260K',
      apiKey: 'unused',
      configuration: { baseURL: `${server.url}/v1` },
      temperature: 0,
      maxTokens: 150,
      maxRetries: 0,
    });

  it('withStructuredOutput (json_schema) gives an object of the schema', async () => {
    const structured = chat().withStructuredOutput(Pet, { name: 'pet', method: 'jsonSchema' });
    const pet = await structured.invoke('A cat');
    expect(Pet.safeParse(pet).success).toBe(true);
    expect(validPet(pet)).toBe(true);
  });

  it('bindTools with tool_choice naming the tool gives a valid call', async () => {
    const bound = chat().bindTools(
      [{ type: 'function', function: { name: 'weather', description: 'weather', parameters: weatherParams } }],
      { tool_choice: 'weather' },
    );
    const msg = await bound.invoke('Weather?');
    expect(msg.tool_calls).toHaveLength(1);
    expect(msg.tool_calls![0]!.name).toBe('weather');
    expect(validWeather(msg.tool_calls![0]!.args), JSON.stringify(msg.tool_calls![0]!.args)).toBe(true);
  });
});
