import * as tf from '@tensorflow/tfjs-core';
import { readAndDispose } from '../attacks/oracle';

/**
 * Steps whose metric scalars are still on the device. Reading a value waits for the device to finish
 * every queued kernel (on webgpu, a GPU -> CPU copy), so the lifecycle queues steps here and reads
 * them all at once, in one transfer, every few steps and before anything that needs their values.
 */
export class PendingMetrics<T> {
  private queue: Array<{ item: T; tensors: Record<string, tf.Tensor> }> = [];

  get size(): number {
    return this.queue.length;
  }

  /** Queues a step; `tensors` (one value each) are owned by the queue from now on. */
  add(item: T, tensors: Record<string, tf.Tensor>): void {
    for (const [name, t] of Object.entries(tensors)) {
      if (t.size !== 1) throw new Error(`internal: metric ${name} has ${t.size} values, not 1`);
    }
    this.queue.push({ item, tensors });
  }

  /** Every queued step with its values, in the order queued, read with one await; the queue is then empty. */
  async read(): Promise<Array<{ item: T; values: Record<string, number> }>> {
    const queue = this.queue;
    this.queue = [];
    const all = queue.flatMap(({ tensors }) => Object.values(tensors));
    try {
      const flat =
        all.length === 0
          ? new Float32Array(0)
          : await readAndDispose(tf.tidy(() => tf.concat(all.map((t) => tf.reshape(tf.cast(t, 'float32'), [1])))));
      let i = 0;
      return queue.map(({ item, tensors }) => ({
        item,
        values: Object.fromEntries(Object.keys(tensors).map((name) => [name, flat[i++] ?? NaN])),
      }));
    } finally {
      tf.dispose(all);
    }
  }

  /** Drops every queued step unread. */
  dispose(): void {
    tf.dispose(this.queue.flatMap(({ tensors }) => Object.values(tensors)));
    this.queue = [];
  }
}
