/**
 * Fixed 2-D sin-cos position embeddings, exactly as MAE's get_2d_sincos_pos_embed(dim, grid,
 * cls_token=True): row 0 (the cls slot) is zero, row 1 + i*grid + j is patch (row i, column j).
 * Its first dim/2 values encode the column j, the last dim/2 the row i (MAE's meshgrid puts the
 * w coordinate first); each half is [sin(pos * omega_k) for k] ++ [cos(pos * omega_k) for k] with
 * omega_k = 1 / 10000^(k / (dim/4)), k = 0 .. dim/4 - 1.
 */
const cache = new Map<string, Float32Array>();

export function sincosPosEmbed(dim: number, grid: number): Float32Array {
  if (dim % 4 !== 0) throw new Error(`sin-cos position embedding needs a width divisible by 4, got ${dim}`);
  const key = `${dim}x${grid}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const quarter = dim / 4;
  const out = new Float32Array((1 + grid * grid) * dim);
  for (let i = 0; i < grid; i++) {
    for (let j = 0; j < grid; j++) {
      const row = (1 + i * grid + j) * dim;
      for (let k = 0; k < quarter; k++) {
        // MAE computes omega in float64 (np.float) and only the result is cast to float32.
        const omega = 1 / 10000 ** (k / quarter);
        out[row + k] = Math.sin(j * omega);
        out[row + quarter + k] = Math.cos(j * omega);
        out[row + 2 * quarter + k] = Math.sin(i * omega);
        out[row + 3 * quarter + k] = Math.cos(i * omega);
      }
    }
  }
  cache.set(key, out);
  return out;
}
