import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { elementwiseProgram } from './programs';

/**
 * Element-wise expm1, log1p and log for float32 on webgpu, in place of tfjs-backend-webgpu's:
 * its expm1 is exp(x) - 1 and its log1p log(1 + x), which lose every digit they exist for when |x| is
 * small, and WGSL's log is only accurate to 2^-21 absolute on [0.5, 2] (a relative error of up to
 * 1e-3 near 1). The MI estimators store the Gaussian kernel as expm1 of its exponent and Renyi's
 * entropy needs lambda^(alpha - 1) - 1 for alpha near 1: both need these to float32 precision.
 */
export type AccurateUnary = 'expm1' | 'log1p' | 'log';

const FUNCTIONS = `
  // exp(x) - 1: Taylor series to x^10 (Horner) for |x| < 0.5, where the truncation is below 1e-10 relative.
  fn mimirExpm1(x : f32) -> f32 {
    if (abs(x) < 0.5) {
      var p = 2.755731922398589e-7;
      p = fma(p, x, 2.755731922398589e-6);
      p = fma(p, x, 2.48015873015873e-5);
      p = fma(p, x, 1.984126984126984e-4);
      p = fma(p, x, 1.388888888888889e-3);
      p = fma(p, x, 8.333333333333333e-3);
      p = fma(p, x, 4.166666666666667e-2);
      p = fma(p, x, 0.16666666666666667);
      p = fma(p, x, 0.5);
      p = fma(p, x, 1.0);
      return p * x;
    }
    return exp(x) - 1.0;
  }

  // log(1 + x) = 2 atanh(s), s = x / (2 + x), |s| < 1/3 for -0.5 < x < 1: the odd series to s^21.
  fn mimirLog1pSeries(x : f32) -> f32 {
    let s = x / (2.0 + x);
    let s2 = s * s;
    var p = 1.0 / 21.0;
    p = fma(p, s2, 1.0 / 19.0);
    p = fma(p, s2, 1.0 / 17.0);
    p = fma(p, s2, 1.0 / 15.0);
    p = fma(p, s2, 1.0 / 13.0);
    p = fma(p, s2, 1.0 / 11.0);
    p = fma(p, s2, 1.0 / 9.0);
    p = fma(p, s2, 1.0 / 7.0);
    p = fma(p, s2, 1.0 / 5.0);
    p = fma(p, s2, 1.0 / 3.0);
    p = fma(p, s2, 1.0);
    return 2.0 * s * p;
  }

  // log(x), through the series of log1p(x - 1) on (0.5, 2), where x - 1 is exact; -infinity at 0 (WGSL
  // leaves log(0) undefined), NaN below 0 as tfjs's.
  fn mimirLog(x : f32) -> f32 {
    if (x > 0.5 && x < 2.0) { return mimirLog1pSeries(x - 1.0); }
    if (x == 0.0) { return -uniforms.INFINITY; }
    if (x < 0.0) { return uniforms.NAN; }
    return log(x);
  }

  fn mimirLog1p(x : f32) -> f32 {
    if (x > -0.5 && x < 1.0) { return mimirLog1pSeries(x); }
    return mimirLog(1.0 + x);
  }`;

export function accurateUnaryProgram(op: AccurateUnary, shape: number[]): WebGPUProgram {
  const call = { expm1: 'mimirExpm1', log1p: 'mimirLog1p', log: 'mimirLog' }[op];
  return elementwiseProgram(shape, `mimirAccurate_${op}`, FUNCTIONS, `${call}(x)`);
}
