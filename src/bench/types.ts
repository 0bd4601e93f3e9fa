// Shapes shared by the benchmark's parts. Times are in seconds (performance.now() / 1000) as in vLLM's
// result files (`ttfts`, `itls`); they become milliseconds only in the reported metrics.

/** One prompt of the workload. */
export interface BenchRequest {
  prompt: string;
  /** prompt tokens without special tokens; exact with --tokenizer, else an estimate (see `exactLengths`) */
  promptLen: number;
  /** max_tokens asked for */
  outputLen: number;
}

/** A workload and what the user should know about how it was made. */
export interface Dataset {
  requests: BenchRequest[];
  /** true when promptLen was counted with the tokenizer */
  exactLengths: boolean;
  notes: string[];
}

/** What one streamed request measured. */
export interface RequestOutput {
  success: boolean;
  /** why it failed ('' when it did not) */
  error: string;
  generatedText: string;
  promptLen: number;
  /** completion_tokens from the usage chunk, when the server sent one */
  usageOutputTokens: number | undefined;
  /** prompt_tokens from the usage chunk, when the server sent one */
  usagePromptTokens: number | undefined;
  /** time to the first content chunk */
  ttft: number;
  /** gaps between consecutive content chunks; length = contentChunks − 1 */
  itl: number[];
  /** request start to the last content chunk (vLLM's `latency`) */
  latency: number;
  /** request start, seconds since the benchmark began */
  startTime: number;
  contentChunks: number;
}

/**
 * What the benchmark needs of a tokenizer: exact prompt lengths and output token counts. TextTokenizer
 * (src/tokenizer/tokenizer.ts) is one; the narrow shape keeps bench independent of the rest of it.
 */
export interface BenchTokenizer {
  encode(text: string, addSpecialTokens?: boolean): number[];
  decode(ids: number[], skipSpecialTokens?: boolean): string;
  readonly vocabSize: number;
}
