// The layers of docs/architecture.md ("Layers"): which folders under src/ each folder may import,
// and the path aliases that name them. One table for eslint.config.js (the rule in
// eslint/layers-rule.mjs), electron.vite.config.ts and vitest.config.ts; tsconfig.base.json's
// "paths" repeat the aliases (JSON cannot import) and test/unit/layers-lint.test.ts checks they agree.

/** Folder under src/ -> the other folders under src/ it may import. */
export const LAYER_IMPORTS = {
  shared: [],
  engine: ['shared'],
  store: ['shared'],
  torch: ['shared', 'engine'],
  jobs: ['shared', 'engine', 'store', 'torch'],
  service: ['shared', 'engine', 'store', 'jobs', 'torch'],
  main: ['shared', 'service', 'jobs'],
  server: ['shared', 'service'],
  // The CLI runs the engine in its own process (train, evaluate, bench ...), and the app service for
  // `mimir serve` and `mimir sweep`.
  cli: ['shared', 'engine', 'store', 'torch', 'jobs', 'service', 'server'],
  preload: ['shared'],
  renderer: ['shared'],
};

/** Layers whose code also runs in the browser renderer: no Node built-in modules. */
export const BROWSER_LAYERS = ['shared', 'renderer'];

/** Alias -> folder, relative to the repository root. `@renderer` is the renderer's own source. */
export const ALIASES = {
  '@shared': 'src/shared',
  '@engine': 'src/engine',
  '@store': 'src/store',
  '@torch': 'src/torch',
  '@jobs': 'src/jobs',
  '@service': 'src/service',
  '@main': 'src/main',
  '@server': 'src/server',
  '@cli': 'src/cli',
  '@renderer': 'src/renderer/src',
};

/** The aliases as absolute paths under `root`, for Vite's and Vitest's `resolve.alias`. */
export function resolveAliases(root) {
  return Object.fromEntries(
    Object.entries(ALIASES).map(([alias, folder]) => [alias, `${root.replace(/\/$/, '')}/${folder}`]),
  );
}
