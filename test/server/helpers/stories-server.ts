// The real `kvserve serve` (startServe) on the bundled stories260K, on a free port of 127.0.0.1, silent, with
// no API key: what the tests that talk to a real engine over HTTP share. `overrides` adjust the config
// (a small KV pool, another device).
import { finishServerConfig, type ServerConfig, serverDefaults } from '../../../src/config.js';
import { type ServeHandle, startServe } from '../../../src/server/serve-cli.js';
import { storiesDir } from './stories.js';

export async function startStoriesServer(overrides: Partial<ServerConfig> = {}): Promise<ServeHandle> {
  const config = finishServerConfig({
    ...serverDefaults(),
    model: storiesDir,
    device: 'cpu' as const,
    port: 0,
    threads: 1,
    logLevel: 'silent' as const,
    apiKey: undefined,
    ...overrides,
  });
  return startServe(config);
}
