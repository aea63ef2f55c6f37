import { describe, expect, it } from 'vitest';
import {
  describeKernelVariants,
  hoistEnableDirectives,
  kernelVariants,
  runPrecision,
  setWebgpuDeviceFeatures,
  setWebgpuKernelSettings,
  useWebgpuPrecision,
  webgpuKernelSettings,
} from '../../../src/engine/webgpu/variants';

describe('the choice of the webgpu kernel variants', () => {
  it('follows the device features and the settings: subgroups where offered unless off, f16 only when asked', () => {
    setWebgpuDeviceFeatures(['timestamp-query']);
    expect(kernelVariants()).toEqual({ subgroups: false, gemmF16: false });
    setWebgpuDeviceFeatures(['subgroups', 'shader-f16']);
    expect(kernelVariants()).toEqual({ subgroups: true, gemmF16: false });
    expect(describeKernelVariants(kernelVariants())).toBe('GEMM fp32; reductions by subgroups');
    setWebgpuKernelSettings({ subgroups: false, precision: 'fp16' });
    expect(kernelVariants()).toEqual({ subgroups: false, gemmF16: true });
    expect(describeKernelVariants(kernelVariants())).toBe(
      'GEMM f16 tiles, f32 accumulation; reductions by workgroup memory',
    );
    setWebgpuDeviceFeatures(['subgroups']);
    expect(() => kernelVariants()).toThrow(
      "precision fp16 needs a WebGPU device with the 'shader-f16' feature, and this one lacks it: use precision fp32",
    );
    setWebgpuKernelSettings({ subgroups: true, precision: 'fp32' });
  });

  it("takes a run's precision from a tfjs engine only, and refuses fp16 off webgpu", () => {
    expect(runPrecision(undefined)).toBe('fp32');
    expect(runPrecision({ name: 'tfjs' })).toBe('fp32');
    expect(runPrecision({ name: 'tfjs', precision: 'fp16' })).toBe('fp16');
    expect(runPrecision({ name: 'torch', nproc: 1, device: 'cuda', precision: 'fp16' })).toBe('fp32');
    expect(() => useWebgpuPrecision('fp16', 'wasm')).toThrow(
      'precision fp16 applies to the webgpu backend only, and wasm was chosen: choose webgpu (--backend webgpu) or precision fp32',
    );
    useWebgpuPrecision('fp32', 'wasm');
  });

  it('leaves the precision as it was when fp16 is refused for want of shader-f16', () => {
    setWebgpuDeviceFeatures(['subgroups']);
    expect(() => useWebgpuPrecision('fp16', 'webgpu')).toThrow(/needs a WebGPU device with the 'shader-f16' feature/);
    expect(webgpuKernelSettings().precision).toBe('fp32');
    expect(kernelVariants()).toEqual({ subgroups: true, gemmF16: false });
  });

  it('moves enable directives above the preamble tfjs writes first, once each', () => {
    const code =
      'struct Uniforms { x : f32, };\n  enable subgroups;\nfn a() {}\n      enable f16;\n  enable subgroups;\nfn main() {}';
    const hoisted = hoistEnableDirectives(code);
    expect(hoisted.startsWith('enable subgroups;\nenable f16;\nstruct Uniforms')).toBe(true);
    expect(hoisted.match(/enable/g)).toHaveLength(2);
    expect(hoisted).toContain('fn a() {}');
    expect(hoistEnableDirectives('fn main() {}')).toBe('fn main() {}');
  });
});
