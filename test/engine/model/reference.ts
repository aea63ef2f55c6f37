/**
 * An independent float64 reference of the ViT MAE and classifier in plain JavaScript, written from
 * MAE's models_mae.py / timm's vision_transformer.py (not from the engine's code). It reads the
 * parameters as float64 arrays in the engine's documented layout (linear weights [in, out]; the
 * patch embedding [p*p*C, D], row (i*p + j)*C + c) and follows MAE's own order of operations:
 * the decoder un-shuffles the tokens into spatial order, and the loss uses the spatial binary mask.
 * The ConvStem (convStem) is a direct convolution from torch's Conv2d definition, not im2col.
 */
export type RefParams = Map<string, Float64Array>;

export interface RefConfig {
  imageSize: number;
  patchSize: number;
  channels: number;
  width: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  decoderWidth: number;
  decoderDepth: number;
  decoderHeads: number;
  normalize?: { mean: number[]; std: number[] } | undefined;
  /** Absent or vit: the linear patch embedding; convstem: Singh et al.'s stem (convStem below). */
  encoder?: { kind: string; stemChannels?: number[] } | undefined;
}

type Vec = Float64Array;

function p(params: RefParams, name: string): Float64Array {
  const v = params.get(name);
  if (!v) throw new Error(`reference: missing ${name}`);
  return v;
}

/** erf in float64: Maclaurin series below 3, Laplace continued fraction for erfc above. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  let frac = 0;
  for (let k = 80; k >= 1; k--) frac = k / 2 / (ax + frac);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + frac);
  return Math.sign(x) * (1 - erfc);
}

export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** rows [R][in] times weight [in, out] (flat, row-major) plus bias. */
function linear(rows: Vec[], w: Float64Array, b: Float64Array): Vec[] {
  const out = b.length;
  const inDim = w.length / out;
  return rows.map((x) => {
    const y = Float64Array.from(b);
    for (let i = 0; i < inDim; i++) {
      const xi = x[i] ?? 0;
      for (let o = 0; o < out; o++) y[o] = (y[o] ?? 0) + xi * (w[i * out + o] ?? 0);
    }
    return y;
  });
}

function layerNorm(rows: Vec[], w: Float64Array, b: Float64Array, eps = 1e-6): Vec[] {
  return rows.map((x) => {
    const n = x.length;
    let mean = 0;
    for (const v of x) mean += v;
    mean /= n;
    let variance = 0;
    for (const v of x) variance += (v - mean) ** 2;
    variance /= n;
    const inv = 1 / Math.sqrt(variance + eps);
    return x.map((v, i) => (v - mean) * inv * (w[i] ?? 0) + (b[i] ?? 0));
  });
}

function attention(params: RefParams, prefix: string, x: Vec[], heads: number): Vec[] {
  const width = x[0]?.length ?? 0;
  const d = width / heads;
  const qkv = linear(x, p(params, `${prefix}.qkv.weight`), p(params, `${prefix}.qkv.bias`));
  const t = x.length;
  const out = x.map(() => new Float64Array(width));
  for (let h = 0; h < heads; h++) {
    // timm: qkv.reshape(B, N, 3, heads, d): q at column h*d + e, k at width + h*d + e, v at 2*width + h*d + e.
    for (let i = 0; i < t; i++) {
      const scores = new Float64Array(t);
      let max = -Infinity;
      for (let j = 0; j < t; j++) {
        let s = 0;
        for (let e = 0; e < d; e++) s += (qkv[i]?.[h * d + e] ?? 0) * (qkv[j]?.[width + h * d + e] ?? 0);
        scores[j] = s / Math.sqrt(d);
        max = Math.max(max, s / Math.sqrt(d));
      }
      let z = 0;
      for (let j = 0; j < t; j++) {
        scores[j] = Math.exp((scores[j] ?? 0) - max);
        z += scores[j] ?? 0;
      }
      const row = out[i] as Vec;
      for (let j = 0; j < t; j++) {
        const a = (scores[j] ?? 0) / z;
        for (let e = 0; e < d; e++) row[h * d + e] = (row[h * d + e] ?? 0) + a * (qkv[j]?.[2 * width + h * d + e] ?? 0);
      }
    }
  }
  return linear(out, p(params, `${prefix}.proj.weight`), p(params, `${prefix}.proj.bias`));
}

function add(a: Vec[], b: Vec[]): Vec[] {
  return a.map((row, i) => row.map((v, j) => v + (b[i]?.[j] ?? 0)));
}

/** `scales`: drop-path factors of the attention and MLP branches for this sample (0 or 1 / keep). */
function block(params: RefParams, prefix: string, x: Vec[], heads: number, scales: [number, number] = [1, 1]): Vec[] {
  const scaled = (rows: Vec[], s: number) => rows.map((r) => r.map((v) => v * s));
  const n1 = layerNorm(x, p(params, `${prefix}.norm1.weight`), p(params, `${prefix}.norm1.bias`));
  const x1 = add(x, scaled(attention(params, `${prefix}.attn`, n1, heads), scales[0]));
  const n2 = layerNorm(x1, p(params, `${prefix}.norm2.weight`), p(params, `${prefix}.norm2.bias`));
  const hidden = linear(n2, p(params, `${prefix}.mlp.fc1.weight`), p(params, `${prefix}.mlp.fc1.bias`)).map((r) =>
    r.map(gelu),
  );
  return add(
    x1,
    scaled(linear(hidden, p(params, `${prefix}.mlp.fc2.weight`), p(params, `${prefix}.mlp.fc2.bias`)), scales[1]),
  );
}

/** MAE's get_2d_sincos_pos_embed(dim, grid, cls_token=True), transcribed from the numpy code. */
export function posEmbed(dim: number, grid: number): Vec[] {
  // grid = np.meshgrid(grid_w, grid_h); grid[0][i][j] = j (w), grid[1][i][j] = i (h)
  const oneD = (embedDim: number, pos: number): number[] => {
    const half = embedDim / 2;
    const omega = Array.from({ length: half }, (_, k) => 1 / 10000 ** (k / (embedDim / 2)));
    return [...omega.map((o) => Math.sin(pos * o)), ...omega.map((o) => Math.cos(pos * o))];
  };
  const rows: Vec[] = [new Float64Array(dim)];
  for (let i = 0; i < grid; i++) {
    for (let j = 0; j < grid; j++) rows.push(Float64Array.from([...oneD(dim / 2, j), ...oneD(dim / 2, i)]));
  }
  return rows;
}

/** MAE's patchify on an NHWC image: patch (i, j) -> values x[i*p + a, j*p + b, c] in (a, b, c) order. */
export function patchify(image: Float64Array, cfg: RefConfig): Vec[] {
  const { imageSize: s, patchSize: ps, channels: c } = cfg;
  const g = s / ps;
  const patches: Vec[] = [];
  for (let i = 0; i < g; i++) {
    for (let j = 0; j < g; j++) {
      const v = new Float64Array(ps * ps * c);
      let k = 0;
      for (let a = 0; a < ps; a++) {
        for (let b = 0; b < ps; b++) {
          for (let ch = 0; ch < c; ch++) v[k++] = image[((i * ps + a) * s + (j * ps + b)) * c + ch] ?? 0;
        }
      }
      patches.push(v);
    }
  }
  return patches;
}

function normalizePatch(v: Vec, cfg: RefConfig): Vec {
  const norm = cfg.normalize;
  if (!norm) return v;
  return v.map((x, k) => (x - (norm.mean[k % cfg.channels] ?? 0)) / (norm.std[k % cfg.channels] ?? 1));
}

/** The image [H*W*C] back from its patches in grid order (patchify's inverse). */
function unpatchify(patches: Vec[], cfg: RefConfig): Float64Array {
  const { imageSize: s, patchSize: ps, channels: c } = cfg;
  const g = s / ps;
  const image = new Float64Array(s * s * c);
  patches.forEach((v, l) => {
    const i = Math.floor(l / g);
    const j = l % g;
    let k = 0;
    for (let a = 0; a < ps; a++) {
      for (let b = 0; b < ps; b++) {
        for (let ch = 0; ch < c; ch++) image[((i * ps + a) * s + (j * ps + b)) * c + ch] = v[k++] ?? 0;
      }
    }
  });
  return image;
}

/**
 * torch's Conv2d on one NHWC feature map [side][side][cin] (flattened), kernel HWIO [k][k][cin][cout],
 * stride and padding as given: out[o][q][co] = b[co] + sum w[di][dj][ci][co] x[s*o + di - pad][s*q + dj - pad][ci].
 */
function conv2d(
  x: Float64Array,
  side: number,
  cin: number,
  w: Float64Array,
  b: Float64Array,
  k: number,
  stride: number,
  pad: number,
): { y: Float64Array; side: number } {
  const cout = b.length;
  const out = Math.floor((side + 2 * pad - k) / stride) + 1;
  const y = new Float64Array(out * out * cout);
  for (let o = 0; o < out; o++) {
    for (let q = 0; q < out; q++) {
      for (let co = 0; co < cout; co++) {
        let acc = b[co] ?? 0;
        for (let di = 0; di < k; di++) {
          const r = stride * o + di - pad;
          if (r < 0 || r >= side) continue;
          for (let dj = 0; dj < k; dj++) {
            const col = stride * q + dj - pad;
            if (col < 0 || col >= side) continue;
            for (let ci = 0; ci < cin; ci++) {
              acc += (w[((di * k + dj) * cin + ci) * cout + co] ?? 0) * (x[(r * side + col) * cin + ci] ?? 0);
            }
          }
        }
        y[(o * out + q) * cout + co] = acc;
      }
    }
  }
  return { y, side: out };
}

/**
 * The authors' ConvBlock (MIMIR models/mae_vit.py): per stem width, Conv2d(3x3, stride 2, padding 1),
 * LayerNorm over the channels (eps 1e-6), GELU; then Conv2d(1x1) to the width. Tokens [L][D] in grid order.
 */
export function convStem(params: RefParams, cfg: RefConfig, image: Float64Array): Vec[] {
  const norm = cfg.normalize;
  let x = norm
    ? image.map((v, i) => (v - (norm.mean[i % cfg.channels] ?? 0)) / (norm.std[i % cfg.channels] ?? 1))
    : image;
  let side = cfg.imageSize;
  let cin = cfg.channels;
  const widths = cfg.encoder?.stemChannels ?? [];
  widths.forEach((cout, i) => {
    const conv = conv2d(
      x,
      side,
      cin,
      p(params, `patch_embed.proj.stem.${3 * i}.weight`),
      p(params, `patch_embed.proj.stem.${3 * i}.bias`),
      3,
      2,
      1,
    );
    side = conv.side;
    const rows = Array.from({ length: side * side }, (_, t) => conv.y.slice(t * cout, (t + 1) * cout));
    const normed = layerNorm(
      rows,
      p(params, `patch_embed.proj.stem.${3 * i + 1}.weight`),
      p(params, `patch_embed.proj.stem.${3 * i + 1}.bias`),
    );
    x = Float64Array.from(normed.flatMap((r) => Array.from(r, gelu)));
    cin = cout;
  });
  const n = widths.length;
  const proj = conv2d(
    x,
    side,
    cin,
    p(params, `patch_embed.proj.stem.${3 * n}.weight`),
    p(params, `patch_embed.proj.stem.${3 * n}.bias`),
    1,
    1,
    0,
  );
  return Array.from({ length: side * side }, (_, t) => proj.y.slice(t * cfg.width, (t + 1) * cfg.width));
}

/**
 * Encoder on its input at patch ids; returns [1 + Lv][D] after `norm`. The input: the visible pixel
 * patches (already perturbed if wanted) for a ViT; every patch of the image for a ConvStem, whose
 * tokens at `ids` go on.
 */
export function encoder(
  params: RefParams,
  cfg: RefConfig,
  patches: Vec[],
  ids: number[],
  finalNorm = true,
  dropScales: [number, number][] = [],
): Vec[] {
  const pos = posEmbed(cfg.width, cfg.imageSize / cfg.patchSize);
  const stem = cfg.encoder?.kind === 'convstem' ? convStem(params, cfg, unpatchify(patches, cfg)) : null;
  const tokens = stem
    ? ids.map((id) => stem[id] as Vec)
    : linear(
        patches.map((v) => normalizePatch(v, cfg)),
        p(params, 'patch_embed.proj.weight'),
        p(params, 'patch_embed.proj.bias'),
      );
  const embedded = tokens.map((row, t) => row.map((v, j) => v + (pos[1 + (ids[t] ?? 0)]?.[j] ?? 0)));
  let x: Vec[] = [Float64Array.from(p(params, 'cls_token')), ...embedded];
  for (let i = 0; i < cfg.depth; i++) x = block(params, `blocks.${i}`, x, cfg.heads, dropScales[i]);
  return finalNorm ? layerNorm(x, p(params, 'norm.weight'), p(params, 'norm.bias')) : x;
}

/**
 * MAE's forward_decoder: embed, append mask tokens, un-shuffle into spatial order with ids_restore,
 * prepend cls, add position embeddings, blocks, norm, pred, drop cls. Returns [L][K] in spatial order.
 */
export function decoder(params: RefParams, cfg: RefConfig, latent: Vec[], visibleIds: number[]): Vec[] {
  const l = (cfg.imageSize / cfg.patchSize) ** 2;
  const x = linear(latent, p(params, 'decoder_embed.weight'), p(params, 'decoder_embed.bias'));
  const maskToken = p(params, 'mask_token');
  const shuffled = [
    ...x.slice(1),
    ...Array.from({ length: l - visibleIds.length }, () => Float64Array.from(maskToken)),
  ];
  const masked = Array.from({ length: l }, (_, i) => i).filter((i) => !visibleIds.includes(i));
  const idsShuffle = [...visibleIds, ...masked];
  const spatial: Vec[] = new Array<Vec>(l);
  idsShuffle.forEach((patch, position) => (spatial[patch] = shuffled[position] as Vec));
  const pos = posEmbed(cfg.decoderWidth, cfg.imageSize / cfg.patchSize);
  let y: Vec[] = [x[0] as Vec, ...spatial].map((row, t) => row.map((v, j) => v + (pos[t]?.[j] ?? 0)));
  for (let i = 0; i < cfg.decoderDepth; i++) y = block(params, `decoder_blocks.${i}`, y, cfg.decoderHeads);
  y = layerNorm(y, p(params, 'decoder_norm.weight'), p(params, 'decoder_norm.bias'));
  return linear(y, p(params, 'decoder_pred.weight'), p(params, 'decoder_pred.bias')).slice(1);
}

/** MAE's forward_loss for one sample: mean over masked patches of the per-patch MSE, norm_pix with unbiased var. */
export function sampleLoss(
  cfg: RefConfig,
  image: Float64Array,
  pred: Vec[],
  visibleIds: number[],
  normPix: boolean,
): number {
  const target = patchify(image, cfg).map((v) => normalizePatch(v, cfg));
  let total = 0;
  let count = 0;
  target.forEach((t, l) => {
    if (visibleIds.includes(l)) return;
    let tt = t;
    if (normPix) {
      const mean = t.reduce((a, b) => a + b, 0) / t.length;
      const variance = t.reduce((a, b) => a + (b - mean) ** 2, 0) / (t.length - 1);
      tt = t.map((v) => (v - mean) / Math.sqrt(variance + 1e-6));
    }
    const row = pred[l] as Vec;
    total += tt.reduce((a, v, k) => a + ((row[k] ?? 0) - v) ** 2, 0) / t.length;
    count++;
  });
  return total / count;
}

/**
 * Whole MAE loss over a batch of NHWC images (each Float64Array [H*W*C]), with an optional
 * perturbation of the visible patches (per sample [Lv][K]) or of the images (already added by the caller).
 */
export function maeLoss(
  params: RefParams,
  cfg: RefConfig,
  images: Float64Array[],
  visible: number[][],
  options: { normPix?: boolean; delta?: Vec[][]; cleanImages?: Float64Array[] } = {},
): number {
  let sum = 0;
  images.forEach((image, n) => {
    const ids = visible[n] ?? [];
    const patches = patchify(image, cfg);
    // A ConvStem reads every patch (its delta is per patch of the image), a ViT the visible ones.
    const inputIds = cfg.encoder?.kind === 'convstem' ? patches.map((_, l) => l) : ids;
    const vis = inputIds.map((id, t) => {
      const v = patches[id] as Vec;
      const d = options.delta?.[n]?.[t];
      return d ? v.map((x, k) => x + (d[k] ?? 0)) : v;
    });
    const latent = encoder(params, cfg, vis, ids);
    const pred = decoder(params, cfg, latent, ids);
    // Targets come from the clean image (MIMIR: the attack never changes the reconstruction target).
    sum += sampleLoss(cfg, options.cleanImages?.[n] ?? image, pred, ids, options.normPix ?? true);
  });
  return sum / images.length;
}

/** timm ViT with global_pool='avg' and fc_norm: mean of patch tokens, fc_norm, head. Returns logits per image. */
export function classifierLogits(
  params: RefParams,
  cfg: RefConfig,
  images: Float64Array[],
  dropScales: [number, number][][] = [],
): Vec[] {
  const l = (cfg.imageSize / cfg.patchSize) ** 2;
  const ids = Array.from({ length: l }, (_, i) => i);
  return images.map((image, n) => {
    const tokens = encoder(params, cfg, patchify(image, cfg), ids, false, dropScales[n]);
    const pooled = new Float64Array(cfg.width);
    for (const row of tokens.slice(1)) row.forEach((v, j) => (pooled[j] = (pooled[j] ?? 0) + v / l));
    const [features] = layerNorm([pooled], p(params, 'fc_norm.weight'), p(params, 'fc_norm.bias'));
    return linear([features as Vec], p(params, 'head.weight'), p(params, 'head.bias'))[0] as Vec;
  });
}
