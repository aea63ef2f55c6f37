import type { Rng } from '../rng';

/**
 * Poisson variates as numpy's legacy generator draws them: multiplication of uniforms below
 * lambda 10, Hoermann's transformed rejection (PTRS, 1993) from 10 up, so large lambdas (CIFAR-10-C's
 * shot noise reaches 500) cost O(1) per draw.
 */
export function poisson(rng: Rng, lambda: number): number {
  if (lambda <= 0) return 0;
  if (lambda < 10) {
    const limit = Math.exp(-lambda);
    let product = rng.uniform();
    let k = 0;
    while (product > limit) {
      product *= rng.uniform();
      k++;
    }
    return k;
  }
  const slam = Math.sqrt(lambda);
  const loglam = Math.log(lambda);
  const b = 0.931 + 2.53 * slam;
  const a = -0.059 + 0.02483 * b;
  const invalpha = 1.1239 + 1.1328 / (b - 3.4);
  const vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    const u = rng.uniform() - 0.5;
    const v = rng.uniform();
    const us = 0.5 - Math.abs(u);
    const k = Math.floor(((2 * a) / us + b) * u + lambda + 0.43);
    if (us >= 0.07 && v <= vr) return k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (Math.log(v) + Math.log(invalpha) - Math.log(a / (us * us) + b) <= -lambda + k * loglam - logFactorial(k))
      return k;
  }
}

const LOG_FACTORIALS: number[] = [0];

/** log(k!), exact sums up to 1024 (cached), Stirling's series beyond. */
export function logFactorial(k: number): number {
  if (k < 1024) {
    for (let i = LOG_FACTORIALS.length; i <= k; i++) LOG_FACTORIALS.push((LOG_FACTORIALS[i - 1] ?? 0) + Math.log(i));
    return LOG_FACTORIALS[k] ?? 0;
  }
  const n = k + 1;
  return (n - 0.5) * Math.log(n) - n + 0.5 * Math.log(2 * Math.PI) + 1 / (12 * n) - 1 / (360 * n ** 3);
}
