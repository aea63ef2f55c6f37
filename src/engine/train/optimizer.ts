/**
 * AdamW with PyTorch's semantics (torch.optim.AdamW): decoupled weight decay p *= 1 - lr * wd, then
 * the Adam step with bias correction, lr and wd taken per parameter group. Fine-tuning's groups
 * follow timm (`isNoWeightDecay`): no weight decay on biases, norm weights (any parameter of rank
 * <= 1), class/mask tokens and position embeddings; pre-training's follow MAE's optimiser
 * (`isNoWeightDecayInPretraining`), which decays the tokens. An optional lr scale per parameter
 * carries layer-wise lr decay in fine-tuning. Optional global-norm gradient clipping as
 * torch.nn.utils.clip_grad_norm_.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Parameters without weight decay besides biases and rank <= 1 tensors (timm's no_weight_decay() and MAE's). */
export const NO_WEIGHT_DECAY_NAMES: readonly string[] = [
  'cls_token',
  'mask_token',
  'dist_token',
  'pos_embed',
  'decoder_pos_embed',
];

/** timm's param_groups_weight_decay rule: rank <= 1, a bias, or a name in the no-decay list. */
export function isNoWeightDecay(
  name: string,
  shape: readonly number[],
  noDecayNames: readonly string[] = NO_WEIGHT_DECAY_NAMES,
): boolean {
  return shape.length <= 1 || name.endsWith('.bias') || noDecayNames.includes(name);
}

/**
 * MAE's pre-training optimiser (optim_factory.add_weight_decay with no skip list): only rank <= 1
 * tensors and biases go undecayed, so cls_token and mask_token are decayed. (Its position
 * embeddings are fixed, as here.)
 */
export function isNoWeightDecayInPretraining(name: string, shape: readonly number[]): boolean {
  return isNoWeightDecay(name, shape, []);
}

export interface AdamWOptions {
  /** (beta1, beta2): pre-training (0.9, 0.95), fine-tuning (0.9, 0.999, the default). */
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: number;
  /** Which parameters get no weight decay; default `isNoWeightDecay`. */
  noWeightDecay?: (name: string, shape: readonly number[]) => boolean;
  /** Multiplier of the learning rate per parameter (layer-wise lr decay); default 1. */
  lrScale?: (name: string) => number;
  /** Clip the global L2 norm of all gradients to this value before the step; null for no clipping. */
  maxGradNorm?: number | null;
}

export interface AdamWHyperparameters {
  betas: [number, number];
  eps: number;
  weightDecay: number;
  maxGradNorm: number | null;
}

/** Optimiser state in plain arrays, as a checkpoint stores it. */
export interface AdamWStateValues {
  /** Number of applyGradients calls. */
  step: number;
  /**
   * Steps each parameter took (PyTorch's per-parameter state['step'], which drives its bias
   * correction); differs from `step` only for a parameter that went without a gradient. Absent: all `step`.
   */
  paramSteps?: Map<string, number>;
  m: Map<string, ArrayLike<number>>;
  v: Map<string, ArrayLike<number>>;
}

interface ParamSlot {
  name: string;
  param: tf.Variable;
  m: tf.Variable;
  v: tf.Variable;
  lrScale: number;
  decay: boolean;
  step: number;
}

export interface StepResult {
  /** Global L2 norm of the gradients before clipping (a scalar the caller owns), when clipping is on. */
  gradNorm: tf.Scalar | null;
}

export class AdamW {
  readonly hyperparameters: AdamWHyperparameters;
  private readonly slots = new Map<string, ParamSlot>();
  private stepCount = 0;
  private disposed = false;

  constructor(params: Map<string, tf.Variable>, options: AdamWOptions = {}) {
    const [beta1, beta2] = options.betas ?? [0.9, 0.999];
    this.hyperparameters = {
      betas: [beta1, beta2],
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? 0,
      maxGradNorm: options.maxGradNorm ?? null,
    };
    for (const value of [beta1, beta2]) {
      if (!(value >= 0 && value < 1)) throw new Error(`AdamW: betas must lie in [0, 1), got ${beta1}, ${beta2}`);
    }
    const noDecay = options.noWeightDecay ?? ((name: string, shape: readonly number[]) => isNoWeightDecay(name, shape));
    for (const [name, param] of params) {
      if (param.dtype !== 'float32') throw new Error(`AdamW: parameter "${name}" is ${param.dtype}, not float32`);
      const lrScale = options.lrScale ? options.lrScale(name) : 1;
      if (!Number.isFinite(lrScale) || lrScale < 0) throw new Error(`AdamW: lr scale of "${name}" is ${lrScale}`);
      this.slots.set(name, {
        name,
        param,
        m: zerosVariable(param.shape),
        v: zerosVariable(param.shape),
        lrScale,
        decay: this.hyperparameters.weightDecay !== 0 && !noDecay(name, param.shape),
        step: 0,
      });
    }
  }

  /** Number of steps taken. */
  get step(): number {
    return this.stepCount;
  }

  /** The group a parameter fell into, for logs and tests. */
  groupOf(name: string): { weightDecay: number; lrScale: number } {
    const slot = this.slot(name);
    return { weightDecay: slot.decay ? this.hyperparameters.weightDecay : 0, lrScale: slot.lrScale };
  }

  /**
   * One AdamW step at learning rate `lr` (the schedule's value; each parameter uses lr * its lr
   * scale). A parameter without a gradient is left untouched and its step count stays, as PyTorch
   * skips a parameter whose grad is None.
   */
  applyGradients(grads: Map<string, tf.Tensor> | tf.NamedTensorMap, lr: number): StepResult {
    if (this.disposed) throw new Error('AdamW: used after dispose()');
    const entries = grads instanceof Map ? [...grads] : Object.entries(grads);
    for (const [name, grad] of entries) {
      const slot = this.slots.get(name);
      if (!slot) throw new Error(`AdamW: gradient for "${name}", which is not a parameter of this optimiser`);
      if (!sameShape(grad.shape, slot.param.shape)) {
        throw new Error(
          `AdamW: gradient of "${name}" has shape [${grad.shape}] but the parameter has [${slot.param.shape}]`,
        );
      }
    }
    this.stepCount += 1;
    const { betas, eps, weightDecay, maxGradNorm } = this.hyperparameters;
    const [beta1, beta2] = betas;

    const gradNorm = tf.tidy((): tf.Scalar | void => {
      // With clipping, the gradient's scale c is folded into the moment coefficients:
      // m = b1 m + (1 - b1) c g, v = b2 v + (1 - b2) c^2 g^2, so no extra op per parameter.
      let gradNorm: tf.Scalar | null = null;
      let gradCoef1: tf.Scalar = tf.scalar(1 - beta1);
      let gradCoef2: tf.Scalar = tf.scalar(1 - beta2);
      if (maxGradNorm !== null) {
        const squares = entries.map(([, grad]) => tf.sum(tf.square(grad)));
        gradNorm = tf.sqrt(squares.length === 1 ? squares[0] : tf.addN(squares)) as tf.Scalar;
        const clip = tf.minimum(tf.div(maxGradNorm, tf.add(gradNorm, 1e-6)), 1);
        gradCoef1 = tf.mul(gradCoef1, clip);
        gradCoef2 = tf.mul(gradCoef2, tf.square(clip));
      }
      const beta1Scalar = tf.scalar(beta1);
      const beta2Scalar = tf.scalar(beta2);
      // Scalars shared by the parameters of one (lr scale, step) group, usually one or a few per step.
      const shared = new Map<string, { stepSize: tf.Scalar; epsilon: tf.Scalar; decayFactor: tf.Scalar }>();
      const scalarsFor = (lrScale: number, t: number) => {
        const key = `${lrScale}/${t}`;
        let scalars = shared.get(key);
        if (!scalars) {
          const groupLr = lr * lrScale;
          const correction1 = 1 - beta1 ** t;
          const sqrtCorrection2 = Math.sqrt(1 - beta2 ** t);
          // sqrt(v)/sqrt(bc2) + eps == (sqrt(v) + eps sqrt(bc2)) / sqrt(bc2): fold 1/sqrt(bc2) into the step size.
          scalars = {
            stepSize: tf.scalar((groupLr * sqrtCorrection2) / correction1),
            epsilon: tf.scalar(eps * sqrtCorrection2),
            decayFactor: tf.scalar(1 - groupLr * weightDecay),
          };
          shared.set(key, scalars);
        }
        return scalars;
      };

      for (const [name, grad] of entries) {
        const slot = this.slot(name);
        slot.step += 1;
        const { stepSize, epsilon, decayFactor } = scalarsFor(slot.lrScale, slot.step);
        const m = tf.add(tf.mul(slot.m, beta1Scalar), tf.mul(grad, gradCoef1));
        const v = tf.add(tf.mul(slot.v, beta2Scalar), tf.mul(tf.square(grad), gradCoef2));
        const update = tf.mul(tf.div(m, tf.add(tf.sqrt(v), epsilon)), stepSize);
        const decayed = slot.decay ? tf.mul(slot.param, decayFactor) : slot.param;
        slot.param.assign(tf.sub(decayed, update));
        slot.m.assign(m);
        slot.v.assign(v);
      }
      return gradNorm ?? undefined;
    });
    return { gradNorm: gradNorm ?? null };
  }

  /** The live moment tensors, in parameter order, for writing a checkpoint. Valid until the next step; do not dispose. */
  stateTensors(): {
    step: number;
    paramSteps: Map<string, number>;
    m: Map<string, tf.Tensor>;
    v: Map<string, tf.Tensor>;
  } {
    const m = new Map<string, tf.Tensor>();
    const v = new Map<string, tf.Tensor>();
    for (const [name, slot] of this.slots) {
      m.set(name, slot.m);
      v.set(name, slot.v);
    }
    return { step: this.stepCount, paramSteps: this.paramSteps(), m, v };
  }

  private paramSteps(): Map<string, number> {
    return new Map([...this.slots].map(([name, slot]) => [name, slot.step]));
  }

  /** A copy of the state in plain arrays. */
  async exportState(): Promise<AdamWStateValues> {
    const m = new Map<string, Float32Array>();
    const v = new Map<string, Float32Array>();
    for (const [name, slot] of this.slots) {
      // Copies: the cpu backend's data() hands out its own storage.
      m.set(name, ((await slot.m.data()) as Float32Array).slice());
      v.set(name, ((await slot.v.data()) as Float32Array).slice());
    }
    return { step: this.stepCount, paramSteps: this.paramSteps(), m, v };
  }

  /** Restore a state: every parameter needs its m and v with the parameter's number of values. */
  importState(state: AdamWStateValues): void {
    if (!Number.isSafeInteger(state.step) || state.step < 0)
      throw new Error(`AdamW: invalid step ${state.step} in the state`);
    const paramSteps = state.paramSteps ?? new Map<string, number>();
    for (const [name, t] of paramSteps) {
      if (!this.slots.has(name)) throw new Error(`AdamW state: step for unknown parameter "${name}"`);
      if (!Number.isSafeInteger(t) || t < 0 || t > state.step)
        throw new Error(`AdamW state: invalid step ${t} for "${name}"`);
    }
    for (const [kind, moments] of [
      ['m', state.m],
      ['v', state.v],
    ] as const) {
      const unknown = [...moments.keys()].filter((name) => !this.slots.has(name));
      if (unknown.length > 0) throw new Error(`AdamW state: ${kind} for unknown parameters ${unknown.join(', ')}`);
      for (const [name, slot] of this.slots) {
        const values = moments.get(name);
        if (!values) throw new Error(`AdamW state: no ${kind} for parameter "${name}"`);
        if (values.length !== slot.param.size) {
          throw new Error(
            `AdamW state: ${kind} of "${name}" has ${values.length} values, the parameter ${slot.param.size}`,
          );
        }
      }
    }
    for (const [name, slot] of this.slots) {
      assignValues(slot.m, state.m.get(name) ?? []);
      assignValues(slot.v, state.v.get(name) ?? []);
      slot.step = paramSteps.get(name) ?? state.step;
    }
    this.stepCount = state.step;
  }

  /** Free the moment variables (the parameters belong to the model). */
  dispose(): void {
    if (this.disposed) return;
    for (const slot of this.slots.values()) {
      slot.m.dispose();
      slot.v.dispose();
    }
    this.disposed = true;
  }

  private slot(name: string): ParamSlot {
    const slot = this.slots.get(name);
    if (!slot) throw new Error(`AdamW: no parameter "${name}"`);
    return slot;
  }
}

function zerosVariable(shape: number[]): tf.Variable {
  const zeros = tf.zeros(shape);
  const variable = tf.variable(zeros, false);
  zeros.dispose();
  return variable;
}

function assignValues(variable: tf.Variable, values: ArrayLike<number>): void {
  const tensor = tf.tensor(Float32Array.from(values), variable.shape, 'float32');
  variable.assign(tensor);
  tensor.dispose();
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
