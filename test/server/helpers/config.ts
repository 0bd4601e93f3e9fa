// `kvserve serve`'s flags as the CLI parses and checks them, without starting anything.
import { finishServerConfig, parseFlags, serverDefaults, serverFlags, type ServerConfig } from '../../../src/config.js';

export function parseConfig(argv: string[]): ServerConfig {
  return finishServerConfig(parseFlags<ServerConfig>(argv, serverFlags, serverDefaults()).config);
}
