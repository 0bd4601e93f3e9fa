// Writes the synthetic tokenizer of a dummy preset (one "w<id>" word per id) into a folder, so that
// `kvserve bench --tokenizer DIR` builds prompts of exact token lengths for `serve --load-format dummy`.
// Usage: npx tsx test/gpu/write-synthetic-tokenizer.ts OUT_DIR configs/llama-3-8b.json
import { readFileSync } from 'node:fs';
import { writeSyntheticTokenizer } from '../../src/tokenizer/synthetic.js';

const [dir, config] = process.argv.slice(2);
if (!dir || !config) throw new Error('usage: write-synthetic-tokenizer.ts OUT_DIR CONFIG_JSON');
const vocab = (JSON.parse(readFileSync(config, 'utf8')) as { vocab_size: number }).vocab_size;
writeSyntheticTokenizer(dir, vocab);
console.log(`synthetic tokenizer of ${vocab} ids in ${dir}`);
