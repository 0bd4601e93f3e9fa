// A scripted EngineClient for server tests: it "generates" a fixed token sequence per prompt (for the
// stories260K prompts, transformers' greedy ids from expected.json), one token per tick, with the real
// contract: maxTokens, EOS unless ignoreEos, stop token ids, abort, logprobs, running/waiting/KV stats.
import {
  EngineError,
  type EngineClient,
  type EngineRequest,
  type EngineStats,
  type RequestOutput,
} from '../../../src/engine/types.js';

export interface FakeEngineOptions {
  /** Tokens to produce for a prompt (repeated cyclically when maxTokens asks for more). */
  script: (promptIds: number[]) => number[];
  eosTokenIds?: number[];
  maxModelLen?: number;
  tickMs?: number;
  /** Requests beyond this many running wait (to exercise the queue). */
  maxRunning?: number;
  kvBlocks?: number;
  blockSize?: number;
}

interface Live {
  req: EngineRequest;
  aborted: boolean;
  wake?: () => void;
}

export class FakeEngine implements EngineClient {
  readonly submitted: EngineRequest[] = [];
  private readonly live = new Map<string, Live>();
  private running = 0;
  private waiting = 0;
  private usedBlocks = 0;
  private generated = 0;
  private prompt = 0;
  failNext: string | undefined;

  constructor(private readonly opts: FakeEngineOptions) {}

  submit(req: EngineRequest): AsyncIterable<RequestOutput> {
    const maxLen = this.opts.maxModelLen ?? 512;
    if (req.promptTokenIds.length + req.sampling.maxTokens > maxLen) {
      throw new EngineError(
        `prompt ${req.promptTokenIds.length} + max ${req.sampling.maxTokens} > ${maxLen}`,
        'context_length_exceeded',
      );
    }
    this.submitted.push(req);
    const live: Live = { req, aborted: false };
    this.live.set(req.id, live);
    this.waiting++;
    return this.generate(live);
  }

  abort(id: string): void {
    const l = this.live.get(id);
    if (!l) return;
    l.aborted = true;
    l.wake?.();
  }

  stats(): EngineStats {
    const blocks = this.opts.kvBlocks ?? 64;
    return {
      numRunning: this.running,
      numWaiting: this.waiting,
      kvCacheUsage: this.usedBlocks / blocks,
      numKvBlocks: blocks,
      numFreeKvBlocks: blocks - this.usedBlocks,
      prefixCacheQueries: this.prompt,
      prefixCacheHits: 0,
      numPreemptions: 0,
      promptTokens: this.prompt,
      generationTokens: this.generated,
    };
  }

  private async sleep(live: Live): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, this.opts.tickMs ?? 1);
      live.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    live.wake = undefined;
  }

  private async *generate(live: Live): AsyncGenerator<RequestOutput> {
    const { req } = live;
    const s = req.sampling;
    const base = { id: req.id, numPromptTokens: req.promptTokenIds.length, numCachedPromptTokens: 0 };
    while (this.opts.maxRunning !== undefined && this.running >= this.opts.maxRunning && !live.aborted)
      await this.sleep(live);
    this.waiting--;
    const blockSize = this.opts.blockSize ?? 16;
    const blocks = Math.ceil((req.promptTokenIds.length + s.maxTokens) / blockSize);
    this.running++;
    this.usedBlocks += blocks;
    this.prompt += req.promptTokenIds.length;
    const script = this.opts.script(req.promptTokenIds);
    const eos = this.opts.eosTokenIds ?? [];
    let n = 0;
    try {
      if (this.failNext) {
        const error = this.failNext;
        this.failNext = undefined;
        yield { ...base, newTokenIds: [], finished: true, finishReason: 'error', error, numOutputTokens: 0 };
        return;
      }
      for (;;) {
        await this.sleep(live);
        if (live.aborted) {
          yield { ...base, newTokenIds: [], finished: true, finishReason: 'abort', numOutputTokens: n };
          return;
        }
        const tok = script[n % script.length]!;
        const isEos = !s.ignoreEos && n >= s.minTokens && eos.includes(tok);
        const isStop = n >= s.minTokens && s.stopTokenIds.includes(tok);
        const logprobs = s.logprobs === null ? undefined : [fakeLogprob(tok, s.logprobs)];
        if (isEos) {
          yield {
            ...base,
            newTokenIds: [],
            finished: true,
            finishReason: 'stop',
            stopTokenId: tok,
            numOutputTokens: n,
          };
          return;
        }
        n++;
        this.generated++;
        const finished = isStop || n >= s.maxTokens;
        yield {
          ...base,
          newTokenIds: [tok],
          logprobs,
          finished,
          numOutputTokens: n,
          ...(n === 1 ? { queueTimeMs: 0.5 } : {}),
          ...(finished ? { finishReason: isStop ? 'stop' : 'length', ...(isStop ? { stopTokenId: tok } : {}) } : {}),
        } as RequestOutput;
        if (finished) return;
      }
    } finally {
      this.running--;
      this.usedBlocks -= blocks;
      this.live.delete(req.id);
    }
  }
}

/** Deterministic fake logprobs: the sampled token first at -0.5, then alternatives below it. */
function fakeLogprob(tok: number, k: number) {
  const top: Array<[number, number]> = [];
  for (let i = 0; i < k; i++) top.push([i === 0 ? tok : (tok + i) % 512, -0.5 - i]);
  return { tokenId: tok, logprob: -0.5, top };
}
