/**
 * Parameter specs: what a parameter is called, its shape, its role and how it starts. Every encoder
 * (encoders.ts) describes its parameters with these; params.ts creates the variables.
 */

/**
 * What a parameter is, for layout conversion (export) and init. 'weight': a linear weight [in, out];
 * 'patch-weight': the ViT's patch embedding [p*p*C, D] (params.ts); 'conv-weight': a convolution
 * kernel [kh, kw, in, out] (tf's HWIO; torch's [out, in, kh, kw] transposed).
 */
export type ParamRole = 'weight' | 'patch-weight' | 'conv-weight' | 'bias' | 'norm' | 'token';

export type Init =
  | { kind: 'xavier'; fanIn: number; fanOut: number }
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'normal'; std: number }
  /** U(-bound, bound): torch's default init of nn.Conv2d's weight and bias is bound = 1 / sqrt(fan_in). */
  | { kind: 'uniform'; bound: number };

export interface ParamSpec {
  name: string;
  shape: number[];
  role: ParamRole;
  init: Init;
}

/** A linear layer's weight [in, out] and, unless `bias` is false (timm's qkv_bias=False), its bias. */
export function linearSpecs(prefix: string, fanIn: number, fanOut: number, bias = true): ParamSpec[] {
  const weight: ParamSpec = {
    name: `${prefix}.weight`,
    shape: [fanIn, fanOut],
    role: 'weight',
    init: { kind: 'xavier', fanIn, fanOut },
  };
  return bias ? [weight, { name: `${prefix}.bias`, shape: [fanOut], role: 'bias', init: { kind: 'zeros' } }] : [weight];
}

export function normSpecs(prefix: string, width: number): ParamSpec[] {
  return [
    { name: `${prefix}.weight`, shape: [width], role: 'norm', init: { kind: 'ones' } },
    { name: `${prefix}.bias`, shape: [width], role: 'norm', init: { kind: 'zeros' } },
  ];
}

/** A classifier head: the LayerNorm `norm` then the linear `head` [width, numClasses]. */
export function normHeadSpecs(norm: string, width: number, numClasses: number, headInitStd: number): ParamSpec[] {
  return [
    ...normSpecs(norm, width),
    { name: 'head.weight', shape: [width, numClasses], role: 'weight', init: { kind: 'normal', std: headInitStd } },
    { name: 'head.bias', shape: [numClasses], role: 'bias', init: { kind: 'zeros' } },
  ];
}

export function blockSpecs(prefix: string, width: number, mlpRatio: number): ParamSpec[] {
  const hidden = Math.round(width * mlpRatio);
  return [
    ...normSpecs(`${prefix}.norm1`, width),
    ...linearSpecs(`${prefix}.attn.qkv`, width, 3 * width),
    ...linearSpecs(`${prefix}.attn.proj`, width, width),
    ...normSpecs(`${prefix}.norm2`, width),
    ...linearSpecs(`${prefix}.mlp.fc1`, width, hidden),
    ...linearSpecs(`${prefix}.mlp.fc2`, hidden, width),
  ];
}
