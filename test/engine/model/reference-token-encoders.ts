/**
 * An independent float64 reference of ConViT and CaiT in plain JavaScript, written from timm's
 * convit.py (GPSA, MHSA, ConVit.forward_features) and cait.py (TalkingHeadAttn, ClassAttn,
 * LayerScaleBlock, LayerScaleBlockClassAttn, Cait.forward_features), not from the engine's code.
 * One sample at a time, tokens as rows; parameters in the engine's documented layout (linear weights
 * [in, out]). Under masking, GPSA's relative positions are those of the visible patches on the full grid.
 */
import { decoder, gelu, patchify, sampleLoss, type RefConfig, type RefParams } from './reference';

type Vec = Float64Array;

export type TokenRefConfig = RefConfig;

function p(params: RefParams, name: string): Float64Array {
  const v = params.get(name);
  if (!v) throw new Error(`reference: missing ${name}`);
  return v;
}

function linear(rows: Vec[], w: Float64Array, b: Float64Array | undefined): Vec[] {
  const inDim = rows[0]?.length ?? 0;
  const out = w.length / inDim;
  return rows.map((x) => {
    const y = b ? Float64Array.from(b) : new Float64Array(out);
    for (let i = 0; i < inDim; i++)
      for (let o = 0; o < out; o++) y[o] = (y[o] ?? 0) + (x[i] ?? 0) * (w[i * out + o] ?? 0);
    return y;
  });
}

function lin(params: RefParams, prefix: string, rows: Vec[]): Vec[] {
  return linear(rows, p(params, `${prefix}.weight`), params.get(`${prefix}.bias`));
}

function layerNorm(params: RefParams, prefix: string, rows: Vec[]): Vec[] {
  const w = p(params, `${prefix}.weight`);
  const b = p(params, `${prefix}.bias`);
  return rows.map((x) => {
    const mean = x.reduce((a, v) => a + v, 0) / x.length;
    const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
    const inv = 1 / Math.sqrt(variance + 1e-6);
    return x.map((v, i) => (v - mean) * inv * (w[i] ?? 0) + (b[i] ?? 0));
  });
}

function softmax(v: number[]): number[] {
  const max = Math.max(...v);
  const e = v.map((x) => Math.exp(x - max));
  const z = e.reduce((a, x) => a + x, 0);
  return e.map((x) => x / z);
}

const add = (a: Vec[], b: Vec[]): Vec[] => a.map((r, i) => r.map((v, j) => v + (b[i]?.[j] ?? 0)));
const scale = (a: Vec[], g: Float64Array): Vec[] => a.map((r) => r.map((v, j) => v * (g[j] ?? 0)));

function mlp(params: RefParams, prefix: string, x: Vec[]): Vec[] {
  return lin(
    params,
    `${prefix}.fc2`,
    lin(params, `${prefix}.fc1`, x).map((r) => r.map(gelu)),
  );
}

/** out_i = sum_j a[h][i][j] v_j over the head's columns; a per head [T][T]. */
function applyAttention(a: number[][][], v: Vec[], heads: number): Vec[] {
  const width = v[0]?.length ?? 0;
  const d = width / heads;
  return (a[0] ?? []).map((_, i) => {
    const row = new Float64Array(width);
    for (let h = 0; h < heads; h++) {
      (a[h]?.[i] ?? []).forEach((w, j) => {
        for (let e = 0; e < d; e++) row[h * d + e] = (row[h * d + e] ?? 0) + w * (v[j]?.[h * d + e] ?? 0);
      });
    }
    return row;
  });
}

/** Scaled dot products q_i . k_j / sqrt(d) per head: [heads][Tq][Tk]. */
function scores(q: Vec[], k: Vec[], heads: number): number[][][] {
  const d = (q[0]?.length ?? 0) / heads;
  return Array.from({ length: heads }, (_, h) =>
    q.map((qi) =>
      k.map((kj) => {
        let s = 0;
        for (let e = 0; e < d; e++) s += (qi[h * d + e] ?? 0) * (kj[h * d + e] ?? 0);
        return s / Math.sqrt(d);
      }),
    ),
  );
}

function embed(params: RefParams, cfg: TokenRefConfig, patches: Vec[], ids: number[]): Vec[] {
  const pos = p(params, 'pos_embed');
  const d = cfg.width;
  return lin(params, 'patch_embed.proj', patches).map((row, t) =>
    row.map((v, j) => v + (pos[(ids[t] ?? 0) * d + j] ?? 0)),
  );
}

function gpsa(params: RefParams, prefix: string, x: Vec[], ids: number[], cfg: TokenRefConfig): Vec[] {
  const width = cfg.width;
  const grid = cfg.imageSize / cfg.patchSize;
  const qk = lin(params, `${prefix}.qk`, x);
  const q = qk.map((r) => r.slice(0, width));
  const k = qk.map((r) => r.slice(width));
  const v = lin(params, `${prefix}.v`, x);
  const w = p(params, `${prefix}.pos_proj.weight`);
  const b = p(params, `${prefix}.pos_proj.bias`);
  const gate = p(params, `${prefix}.gating_param`);
  const content = scores(q, k, cfg.heads).map((head) => head.map(softmax));
  const attn = content.map((head, h) => {
    const g = 1 / (1 + Math.exp(-(gate[h] ?? 0)));
    return head.map((row, i) => {
      const pos = softmax(
        ids.map((jd) => {
          const id = ids[i] ?? 0;
          const dx = (jd % grid) - (id % grid);
          const dy = Math.floor(jd / grid) - Math.floor(id / grid);
          const rel = [dx, dy, dx * dx + dy * dy];
          return rel.reduce((a, r, c) => a + r * (w[c * cfg.heads + h] ?? 0), b[h] ?? 0);
        }),
      );
      const mixed = row.map((s, j) => (1 - g) * s + g * (pos[j] ?? 0));
      const z = mixed.reduce((a, m) => a + m, 0);
      return mixed.map((m) => m / z);
    });
  });
  return lin(params, `${prefix}.proj`, applyAttention(attn, v, cfg.heads));
}

function mhsa(params: RefParams, prefix: string, x: Vec[], cfg: TokenRefConfig): Vec[] {
  const width = cfg.width;
  const qkv = lin(params, `${prefix}.qkv`, x);
  const q = qkv.map((r) => r.slice(0, width));
  const k = qkv.map((r) => r.slice(width, 2 * width));
  const v = qkv.map((r) => r.slice(2 * width));
  const attn = scores(q, k, cfg.heads).map((head) => head.map(softmax));
  return lin(params, `${prefix}.proj`, applyAttention(attn, v, cfg.heads));
}

/** timm ConVit.forward_features on the patches at `ids` (the visible ones under masking): [1 + M][D] after norm. */
export function convitTokens(
  params: RefParams,
  cfg: TokenRefConfig,
  localUpToLayer: number,
  patches: Vec[],
  ids: number[],
): Vec[] {
  let x = embed(params, cfg, patches, ids);
  for (let i = 0; i < cfg.depth; i++) {
    if (i === localUpToLayer) x = [Float64Array.from(p(params, 'cls_token')), ...x];
    const prefix = `blocks.${i}`;
    const n1 = layerNorm(params, `${prefix}.norm1`, x);
    x = add(
      x,
      i < localUpToLayer ? gpsa(params, `${prefix}.attn`, n1, ids, cfg) : mhsa(params, `${prefix}.attn`, n1, cfg),
    );
    x = add(x, mlp(params, `${prefix}.mlp`, layerNorm(params, `${prefix}.norm2`, x)));
  }
  return layerNorm(params, 'norm', x);
}

/** Mix per-(i, j) head values through a linear layer over heads: out[h'][i][j] = sum_h a[h][i][j] W[h, h'] + b[h']. */
function mixHeads(params: RefParams, prefix: string, a: number[][][]): number[][][] {
  const w = p(params, `${prefix}.weight`);
  const b = p(params, `${prefix}.bias`);
  const heads = a.length;
  return Array.from({ length: heads }, (_, h2) =>
    (a[0] ?? []).map((row, i) =>
      row.map((_, j) => a.reduce((s, head, h) => s + (head[i]?.[j] ?? 0) * (w[h * heads + h2] ?? 0), b[h2] ?? 0)),
    ),
  );
}

function talkingHeads(params: RefParams, prefix: string, x: Vec[], cfg: TokenRefConfig): Vec[] {
  const width = cfg.width;
  const qkv = lin(params, `${prefix}.qkv`, x);
  const q = qkv.map((r) => r.slice(0, width));
  const k = qkv.map((r) => r.slice(width, 2 * width));
  const v = qkv.map((r) => r.slice(2 * width));
  const logits = mixHeads(params, `${prefix}.proj_l`, scores(q, k, cfg.heads));
  const attn = mixHeads(
    params,
    `${prefix}.proj_w`,
    logits.map((head) => head.map(softmax)),
  );
  return lin(params, `${prefix}.proj`, applyAttention(attn, v, cfg.heads));
}

function classAttention(params: RefParams, prefix: string, u: Vec[], cfg: TokenRefConfig): Vec {
  const q = lin(params, `${prefix}.q`, [u[0] as Vec]);
  const k = lin(params, `${prefix}.k`, u);
  const v = lin(params, `${prefix}.v`, u);
  const attn = scores(q, k, cfg.heads).map((head) => head.map(softmax));
  return lin(params, `${prefix}.proj`, applyAttention(attn, v, cfg.heads))[0] as Vec;
}

/** timm Cait.forward_features on the patches at `ids`: [1 + M][D] after norm, cls first. */
export function caitTokens(
  params: RefParams,
  cfg: TokenRefConfig,
  depthTokenOnly: number,
  patches: Vec[],
  ids: number[],
): Vec[] {
  let x = embed(params, cfg, patches, ids);
  for (let i = 0; i < cfg.depth; i++) {
    const prefix = `blocks.${i}`;
    x = add(
      x,
      scale(
        talkingHeads(params, `${prefix}.attn`, layerNorm(params, `${prefix}.norm1`, x), cfg),
        p(params, `${prefix}.gamma_1`),
      ),
    );
    x = add(
      x,
      scale(mlp(params, `${prefix}.mlp`, layerNorm(params, `${prefix}.norm2`, x)), p(params, `${prefix}.gamma_2`)),
    );
  }
  let cls: Vec = Float64Array.from(p(params, 'cls_token'));
  for (let j = 0; j < depthTokenOnly; j++) {
    const prefix = `blocks_token_only.${j}`;
    const u = layerNorm(params, `${prefix}.norm1`, [cls, ...x]);
    cls = add(
      [cls],
      scale([classAttention(params, `${prefix}.attn`, u, cfg)], p(params, `${prefix}.gamma_1`)),
    )[0] as Vec;
    const m = mlp(params, `${prefix}.mlp`, layerNorm(params, `${prefix}.norm2`, [cls]));
    cls = add([cls], scale(m, p(params, `${prefix}.gamma_2`)))[0] as Vec;
  }
  return layerNorm(params, 'norm', [cls, ...x]);
}

export type TokenRef = (params: RefParams, patches: Vec[], ids: number[]) => Vec[];

/** timm's forward_head with global_pool='token': head(tokens[0]) per image. */
export function tokenLogits(params: RefParams, cfg: TokenRefConfig, tokens: TokenRef, images: Float64Array[]): Vec[] {
  const l = (cfg.imageSize / cfg.patchSize) ** 2;
  const ids = Array.from({ length: l }, (_, i) => i);
  return images.map((image) => lin(params, 'head', [tokens(params, patchify(image, cfg), ids)[0] as Vec])[0] as Vec);
}

/** The MAE loss over a token encoder: its latent on the visible patches (ids per sample), MAE's decoder and loss. */
export function tokenMaeLoss(
  params: RefParams,
  cfg: TokenRefConfig,
  tokens: TokenRef,
  images: Float64Array[],
  visible: number[][],
): number {
  let sum = 0;
  images.forEach((image, n) => {
    const ids = visible[n] ?? [];
    const patches = patchify(image, cfg);
    const latent = tokens(
      params,
      ids.map((id) => patches[id] as Vec),
      ids,
    );
    sum += sampleLoss(cfg, image, decoder(params, cfg, latent, ids), ids, true);
  });
  return sum / images.length;
}
