import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

const requireModule = createRequire(import.meta.url);
let wasmPathsSet = false;

/** Activate a TensorFlow.js backend for a test file; fails the test if it cannot be activated. */
export async function useBackend(name: 'cpu' | 'wasm'): Promise<void> {
  if (name === 'wasm' && !wasmPathsSet) {
    setWasmPaths(
      path.join(path.dirname(requireModule.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep,
    );
    wasmPathsSet = true;
  }
  if (!(await tf.setBackend(name))) throw new Error(`Could not activate the ${name} backend.`);
  await tf.ready();
}
