/**
 * Entry of the bench's worker thread (built to out/main/bench-worker.js): its own tfjs on the stock
 * single-threaded wasm backend, running the slices of the batch the main thread hands it.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { initClassifierParams, initMaeParams } from '../../model';
import { Rng } from '../../rng';
import { benchModelConfig } from '../settings';
import { HalfRunner } from './half';
import type { WorkerData, WorkerReply, WorkerRequest } from './sides';

const requireModule = createRequire(import.meta.url);

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('bench worker: not in a worker thread');
  const data = workerData as WorkerData;
  setWasmPaths(
    path.join(path.dirname(requireModule.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep,
  );
  if (!(await tf.setBackend('wasm'))) throw new Error('bench worker: the wasm backend did not start');
  const config = benchModelConfig(data.settings);
  // Placeholder values: the main thread sends the real ones before the first step.
  const params =
    data.model === 'mae'
      ? initMaeParams(config, new Rng(0))
      : initClassifierParams(config, data.settings.classes, new Rng(0));
  const runner = new HalfRunner(params, config, data.settings);
  port.on('message', (request: WorkerRequest) => {
    let reply: WorkerReply;
    const transfer: ArrayBuffer[] = [];
    try {
      let result: unknown;
      if (request.kind === 'setParams') result = runner.setParams(request.values);
      else if (request.kind === 'pretrainAttack') {
        const r = runner.pretrainAttack(request.input);
        transfer.push(r.adversarial.buffer as ArrayBuffer, r.latent.buffer as ArrayBuffer);
        result = r;
      } else if (request.kind === 'pretrainTrain') {
        const r = runner.pretrainTrain(request.miGrad, request.weight);
        for (const g of Object.values(r.grads)) transfer.push(g.buffer as ArrayBuffer);
        result = r;
      } else {
        const r = runner.pgdat(request.input);
        for (const g of Object.values(r.grads)) transfer.push(g.buffer as ArrayBuffer);
        result = r;
      }
      reply = { id: request.id, ok: true, result };
    } catch (error) {
      reply = {
        id: request.id,
        ok: false,
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      };
    }
    port.postMessage(reply, transfer);
  });
  port.postMessage('ready');
}

main().catch((error: unknown) => {
  parentPort?.postMessage({ failed: error instanceof Error ? error.message : String(error) });
});
