// Where the Hub is, who we are to it and where its files are cached: the environment variables Python's
// huggingface_hub reads, with the same names, defaults and precedence, so both tools share one cache and one login.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { getHFHubCachePath } from '@huggingface/hub';
import { HubError } from './hub-errors.js';

export interface HubSettings {
  /** HF_ENDPOINT without a trailing slash, e.g. https://huggingface.co */
  endpoint: string;
  /** HF_TOKEN, else the token file `huggingface-cli login` wrote */
  token: string | undefined;
  /** HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE): the cache only, never the network */
  offline: boolean;
  /** HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub */
  cacheDir: string;
  /** HF_HUB_DISABLE_PROGRESS_BARS */
  noProgress: boolean;
}

/** huggingface_hub's `_is_true`: 1, ON, YES, TRUE in any case. */
function isTrue(v: string | undefined): boolean {
  return v !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(v.trim().toUpperCase());
}

function hfHome(env: NodeJS.ProcessEnv): string {
  return env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface');
}

function readToken(env: NodeJS.ProcessEnv): string | undefined {
  const fromEnv = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN;
  if (fromEnv) return fromEnv.trim();
  const file = env.HF_TOKEN_PATH || join(hfHome(env), 'token');
  if (!existsSync(file)) return undefined;
  return readFileSync(file, 'utf8').trim() || undefined;
}

/** Read once per command from process.env (the library reads the cache variables from there too). */
export function hubSettingsFromEnv(): HubSettings {
  const env = process.env;
  const token = readToken(env);
  // @huggingface/hub refuses other tokens with a TypeError deep inside a request; say it up front.
  if (token !== undefined && !token.startsWith('hf_')) {
    throw new HubError('HF_TOKEN must be a Hugging Face access token (it starts with hf_)');
  }
  return {
    endpoint: (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, ''),
    token,
    offline: isTrue(env.HF_HUB_OFFLINE || env.TRANSFORMERS_OFFLINE),
    cacheDir: getHFHubCachePath(),
    noProgress: isTrue(env.HF_HUB_DISABLE_PROGRESS_BARS),
  };
}
