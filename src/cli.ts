#!/usr/bin/env node
// kvserve serve | generate | chat | bench | build | engine-info — each subcommand parses its own flags and returns an exit code.
import { ConfigError } from './config.js';

const USAGE = `usage: kvserve <command> [options]

commands:
  serve      OpenAI-compatible HTTP server (default model: the stories260K demo)
  generate   generate text for one prompt and print it as it comes
  chat       chat with the model in the terminal (or with a running server: --base-url)
  bench      benchmark any OpenAI-compatible server (TTFT, ITL, throughput)
  build      build an engine: the weights in the backend's final layout, with a manifest
  engine-info  print an engine's manifest

kvserve <command> --help lists a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return (await import('./server/index.js')).runServeCli(rest);
    case 'generate':
      return (await import('./generate.js')).runGenerateCli(rest);
    case 'chat':
      return (await import('./chat/chat-cli.js')).runChatCli(rest);
    case 'bench':
      return (await import('./bench/index.js')).runBenchCli(rest);
    case 'build':
      return (await import('./build/build-cli.js')).runBuildCli(rest);
    case 'engine-info':
      return (await import('./build/build-cli.js')).runEngineInfoCli(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      console.log(USAGE);
      return command === undefined ? 1 : 0;
    default:
      console.error(`kvserve: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // Every expected failure (bad flag, bad model folder, engine error) is one line, never a stack trace.
    const message = err instanceof Error ? err.message : String(err);
    console.error(`kvserve: ${message}`);
    if (!(err instanceof ConfigError) && process.env.KVSERVE_DEBUG) console.error(err);
    process.exitCode = 1;
  },
);
