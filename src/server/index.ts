// Public surface of the HTTP server: `kvserve serve` and the app for tests and embedding.
export { buildApp, kvserveApp, type AppDeps, type BuiltApp } from './app.js';
export { ModelSlot, type LoadedModel } from './model-slot.js';
export { runServeCli, startServe, type ServeHandle } from './serve-cli.js';
