import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { runMimir } from '../helpers/cli';
import { LAVAPIPE_ICD, requireLavapipe } from '../engine/webgpu/lavapipe';
import { SWIFTSHADER_ICD, requireSwiftShader } from '../engine/webgpu/swiftshader';

const GemmReport = z.object({
  gemm: z.array(
    z.object({
      m: z.number(),
      backend: z.string(),
      variant: z.object({ shader: z.string(), description: z.string() }).nullable(),
      tflops: z.number(),
    }),
  ),
});

/** `mimir bench --gemm` says which GEMM variant ran (VK_ICD_FILENAMES set for the child only). */
describe('mimir bench --gemm', () => {
  it('names the fp32 GEMM shader on SwiftShader, and refuses --precision fp16 there (no shader-f16)', () => {
    requireSwiftShader();
    const env = { VK_ICD_FILENAMES: SWIFTSHADER_ICD, MIMIR_BACKEND: '' };
    const args = ['bench', '--backend', 'webgpu', '--gemm', '70x50x30', '--repeats', '1'];
    const result = runMimir([...args, '--json'], env);
    expect(result.status, result.stderr).toBe(0);
    const [timing] = GemmReport.parse(JSON.parse(result.stdout)).gemm;
    expect(timing).toMatchObject({
      m: 70,
      backend: 'webgpu',
      variant: { shader: 'mimirGemm_nn11', description: 'fp32' },
    });
    const f16 = runMimir([...args, '--precision', 'fp16'], env);
    expect(f16.status).not.toBe(0);
    expect(f16.stderr).toMatch(
      /precision fp16 needs a WebGPU device with the 'shader-f16' feature.*use precision fp32/,
    );
  }, 120_000);

  it('runs and names the f16-tile GEMM on lavapipe with --precision fp16', () => {
    requireLavapipe(); // fails, naming the script to run, where lavapipe is missing
    const env = { VK_ICD_FILENAMES: LAVAPIPE_ICD, MIMIR_BACKEND: '' };
    const result = runMimir(
      ['bench', '--backend', 'webgpu', '--precision', 'fp16', '--gemm', '68x132x20', '--repeats', '1'],
      env,
    );
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(
      /^GEMM 68x132x20 on webgpu \(mimirGemm_nn44_f16: f16 tiles, f32 accumulation\): [\d.]+ ms per product/m,
    );
  }, 120_000);

  it('refuses --precision fp16 on a backend other than webgpu', () => {
    const result = runMimir(['bench', '--backend', 'wasm', '--precision', 'fp16', '--gemm', '8x8x8', '--repeats', '1']);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(
      /precision fp16 applies to the webgpu backend only, and wasm was chosen: choose webgpu \(--backend webgpu\) or precision fp32/,
    );
  }, 120_000);
});
