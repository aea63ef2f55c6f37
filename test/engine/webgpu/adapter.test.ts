import { describe, expect, it } from 'vitest';
import { cpuAdapterReason } from '../../../src/engine/webgpu/adapter';

const info = (over: Partial<Parameters<typeof cpuAdapterReason>[0]>) => ({
  vendor: 'nvidia',
  architecture: 'hopper',
  device: 'NVIDIA H100 80GB HBM3',
  description: 'NVIDIA: 565.57',
  isFallbackAdapter: false,
  ...over,
});

describe('WebGPU adapter classification', () => {
  it('takes real GPUs as GPUs', () => {
    expect(cpuAdapterReason(info({}))).toBeNull();
    expect(cpuAdapterReason(info({ vendor: 'amd', architecture: 'rdna-3', device: '', description: '' }))).toBeNull();
    expect(
      cpuAdapterReason(info({ vendor: 'apple', architecture: 'metal-3', isFallbackAdapter: undefined })),
    ).toBeNull();
    expect(
      cpuAdapterReason(info({ vendor: 'intel', architecture: 'xe-lpg', description: 'Intel(R) Arc(tm) Graphics' })),
    ).toBeNull();
  });

  it('passes over SwiftShader, fallback adapters and software Vulkan drivers, saying why', () => {
    expect(
      cpuAdapterReason({
        vendor: 'google',
        architecture: 'swiftshader',
        device: 'swiftshader-device-subzero-',
        description: 'SwiftShader driver 5.0.0',
        isFallbackAdapter: true,
      }),
    ).toMatch(/^SwiftShader, a Vulkan implementation on the CPU/);
    expect(cpuAdapterReason(info({ vendor: 'google', architecture: '', device: '', description: '' }))).toMatch(
      /vendor google/,
    );
    expect(cpuAdapterReason(info({ isFallbackAdapter: true }))).toMatch(/fallback/);
    expect(
      cpuAdapterReason(info({ vendor: 'mesa', architecture: '', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' })),
    ).toMatch(/^llvmpipe/);
    expect(cpuAdapterReason(info({ vendor: 'mesa', architecture: '', device: 'lavapipe' }))).toMatch(/^lavapipe/);
  });
});
