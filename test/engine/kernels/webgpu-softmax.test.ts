import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../../../src/engine/backend';
import { clearDispatchedWebgpuShaders, dispatchedWebgpuShaders } from '../../../src/engine/webgpu/kernels';
import { setWebgpuKernelSettings } from '../../../src/engine/webgpu/variants';
import { checkSoftmax, runSmallSoftmaxes, SOFTMAX_ROW_LENGTHS, softmaxShaders } from '../webgpu/softmax-checks';
import { useSwiftShader } from '../webgpu/swiftshader';
import { compiledShaderKeys } from '../webgpu/webgpu-checks';

describe('the engine softmax and log-softmax kernels on webgpu (SwiftShader)', () => {
  beforeAll(async () => {
    useSwiftShader();
    const report = await selectBackend({ backend: 'webgpu', forcedBy: 'env' }, 'cli');
    expect(report.chosen).toBe('webgpu');
    expect(report.webgpu.adapter?.features).toContain('subgroups');
  });

  it("run the engine's shaders forward and backward (subgroups where offered, plain when off), never tfjs's softmax", async () => {
    clearDispatchedWebgpuShaders();
    await runSmallSoftmaxes();
    expect(dispatchedWebgpuShaders().sort()).toEqual(softmaxShaders(true));
    for (const key of softmaxShaders(true))
      expect(compiledShaderKeys().some((c) => c.startsWith(`${key}_`))).toBe(true);
    setWebgpuKernelSettings({ subgroups: false });
    try {
      clearDispatchedWebgpuShaders();
      await runSmallSoftmaxes();
      expect(dispatchedWebgpuShaders().sort()).toEqual(softmaxShaders(false));
    } finally {
      setWebgpuKernelSettings({ subgroups: true });
    }
    // tfjs-backend-webgpu's own softmax program has the shader key 'softmax'.
    expect(compiledShaderKeys().filter((c) => c.startsWith('softmax'))).toEqual([]);
  });

  // Both variants of the row max and sums (SwiftShader's subgroups are 4 wide).
  it.each(SOFTMAX_ROW_LENGTHS.flatMap((cols) => [[cols, 'subgroups'] as const, [cols, 'plain'] as const]))(
    'values and gradients match float64, logits up to +-80 and near 100 (row length %i, %s)',
    async (cols, variant) => {
      setWebgpuKernelSettings({ subgroups: variant === 'subgroups' });
      try {
        clearDispatchedWebgpuShaders();
        const errors = await checkSoftmax(cols);
        console.log(`webgpu softmax ${cols} (${variant}) vs float64: ${JSON.stringify(errors)}`);
        expect(dispatchedWebgpuShaders().sort()).toEqual(softmaxShaders(variant === 'subgroups'));
      } finally {
        setWebgpuKernelSettings({ subgroups: true });
      }
    },
  );
});
