// Public surface of the HTTP server: `kvserve serve` and the app for tests and embedding.
export { buildApp, kvserveApp, type AppDeps, type BuiltApp } from './app.js';
export { ModelRegistry, type ModelLoader, type RegistryOptions } from './model-registry.js';
export { ModelSlot, type LoadedModel, type ModelState, type ServedModel } from './model-slot.js';
export type { ModelSpec } from './model-spec.js';
export { runServeCli, startServe, type ServeHandle, type StartOptions } from './serve-cli.js';
