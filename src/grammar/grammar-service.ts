// Structured outputs for one model: its vocabulary as xgrammar sees it, compiled grammars cached by spec, and
// one matcher per choice, which the engine drives as the choice's TokenConstraint. Everything here runs on the
// event loop in one xgrammar instance (the matchers must live where their compiled grammar does): compiling a
// new spec costs the event loop once (its tokens are matched against the grammar), a cached one nothing, and
// each step of a constrained choice one mask computation. New specs are checked by the probe first
// (grammar-probe.ts), so an invalid one never reaches this instance.
import type { TokenConstraint } from '../engine/types.js';
import type { TextTokenizer } from '../tokenizer/tokenizer.js';
import { GrammarError, GrammarProbe } from './grammar-probe.js';
import { compileSpec, type GrammarSpec, specKey } from './grammar-spec.js';
import {
  type CompiledGrammar,
  type GrammarCompiler,
  type GrammarMatcher,
  loadXGrammar,
  type XGrammarInstance,
} from './xgrammar-module.js';

/** Compiled grammars kept (least recently used out first). A compiled JSON schema over a 128k vocabulary is a
 *  few MB; a matcher keeps its own grammar alive, so evicting never disturbs a running request. */
const CACHE_SIZE = 64;

export interface GrammarServiceStats {
  compiled: number; // specs compiled (cache misses)
  hits: number;
  compileMs: number; // event-loop time spent compiling, in total
}

export class GrammarService {
  private readonly cache = new Map<string, Promise<CompiledGrammar>>();
  readonly stats: GrammarServiceStats = { compiled: 0, hits: 0, compileMs: 0 };

  private constructor(
    private readonly instance: XGrammarInstance,
    private readonly compiler: GrammarCompiler,
    private readonly probe: GrammarProbe,
    /** Words of a mask: ceil(vocabSize / 32). */
    readonly maskWords: number,
  ) {}

  /** The model's vocabulary (`vocabSize` = the logits' width, which may exceed the tokenizer's) for xgrammar:
   *  special tokens other than the stop ids can never be generated, as our detokenizer would drop them. */
  static async create(tokenizer: TextTokenizer, vocabSize: number): Promise<GrammarService> {
    const instance = loadXGrammar();
    const stops = tokenizer.eosTokenIds.filter((id) => id < vocabSize);
    const n = Math.min(tokenizer.vocabSize, vocabSize);
    const vocab: string[] = new Array(n);
    for (let id = 0; id < n; id++) {
      const special = tokenizer.isSpecial(id) && !stops.includes(id);
      vocab[id] = special ? '' : (tokenizer.idToToken(id) ?? '');
    }
    const { vocabType, addPrefixSpace } = tokenizer.decoding;
    const info = await instance.xg.TokenizerInfo.createTokenizerInfo(
      vocab,
      vocabType,
      addPrefixSpace,
      vocabSize,
      stops,
    );
    const compiler = await instance.xg.GrammarCompiler.createGrammarCompiler(info, false);
    return new GrammarService(instance, compiler, new GrammarProbe(), Math.ceil(vocabSize / 32));
  }

  /** The compiled grammar of `spec`, from the cache or compiled now; a GrammarError when it is invalid. */
  compile(spec: GrammarSpec): Promise<CompiledGrammar> {
    const key = specKey(spec);
    const hit = this.cache.get(key);
    if (hit) {
      this.stats.hits++;
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const compiled = this.probe.check(spec).then(() => this.compileNow(spec));
    this.cache.set(key, compiled);
    compiled.catch(() => this.cache.get(key) === compiled && this.cache.delete(key));
    while (this.cache.size > CACHE_SIZE) {
      const [oldest, evicted] = this.cache.entries().next().value!;
      this.cache.delete(oldest);
      evicted.then(
        (g) => g.dispose(),
        () => undefined,
      );
    }
    return compiled;
  }

  /** A fresh matcher of the compiled grammar, as the engine's constraint of one choice. */
  async constraint(compiled: CompiledGrammar): Promise<XGrammarConstraint> {
    const matcher = await this.instance.xg.GrammarMatcher.createGrammarMatcher(compiled);
    return new XGrammarConstraint(matcher);
  }

  async close(): Promise<void> {
    await this.probe.close();
  }

  private async compileNow(spec: GrammarSpec): Promise<CompiledGrammar> {
    const t0 = performance.now();
    try {
      return await compileSpec(this.instance.xg, this.compiler, spec);
    } catch (e) {
      // The probe parsed it: a failure here is xgrammar's compile step itself, reported the same way.
      throw new GrammarError(this.instance.takeError() ?? (e instanceof Error ? e.message : String(e)));
    } finally {
      this.stats.compiled++;
      this.stats.compileMs += performance.now() - t0;
    }
  }
}

/** One choice's grammar state (xgrammar's GrammarMatcher): the engine asks for masks and feeds the tokens. */
export class XGrammarConstraint implements TokenConstraint {
  private disposed = false;
  constructor(private readonly matcher: GrammarMatcher) {}

  nextMask(): Promise<Int32Array> {
    return this.matcher.getNextTokenBitmask();
  }

  accept(token: number): boolean {
    return this.matcher.acceptToken(token);
  }

  isTerminated(): boolean {
    return this.matcher.isTerminated();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.matcher.dispose();
  }
}
