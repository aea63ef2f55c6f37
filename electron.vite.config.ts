import { resolve } from 'node:path';
import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'electron-vite';
import type { Plugin } from 'vite';
import { resolveAliases } from './eslint/layers.mjs';
import { RENDERER_CSP } from './src/shared/csp';

/** One Content-Security-Policy for the Electron page (meta tag) and the web server (header). */
function rendererCsp(): Plugin {
  // frame-ancestors is ignored (with a warning) in a meta tag; the web server sends it as a header.
  const metaPolicy = RENDERER_CSP.split('; ')
    .filter((directive) => !directive.startsWith('frame-ancestors'))
    .join('; ');
  return {
    name: 'mimir-renderer-csp',
    transformIndexHtml: (html) => html.replace('__RENDERER_CSP__', metaPolicy),
  };
}

// The path aliases (@shared, @engine, ...) of eslint/layers.mjs, for every target.
const resolveOptions = { alias: resolveAliases(resolve('.')) };

export default defineConfig({
  main: {
    resolve: resolveOptions,
    build: {
      // TensorFlow.js is bundled: tfjs-core's gradients are registered only by its ES-module build
      // (dist/register_all_gradients.js, extensionless imports that Node cannot load), while Node
      // would take the package's CommonJS main, which registers none.
      externalizeDeps: {
        exclude: [
          '@tensorflow/tfjs-core',
          '@tensorflow/tfjs-backend-cpu',
          '@tensorflow/tfjs-backend-wasm',
          '@tensorflow/tfjs-backend-webgpu',
        ],
      },
      rollupOptions: {
        input: {
          index: resolve('src/main/index.ts'),
          'engine-process': resolve('src/jobs/engine-process.ts'),
          cli: resolve('src/cli/index.ts'),
        },
      },
    },
  },
  preload: {
    resolve: resolveOptions,
    build: {
      externalizeDeps: true,
      rollupOptions: {
        // A sandboxed preload cannot be an ES module.
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    resolve: resolveOptions,
    plugins: [vue(), rendererCsp()],
  },
});
