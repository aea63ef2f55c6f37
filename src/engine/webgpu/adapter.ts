/// <reference types="@webgpu/types" />
import * as tf from '@tensorflow/tfjs-core';
import type { BackendCandidate, WebgpuAdapter, WebgpuReport } from '@shared/system';
import { errorMessage } from '@shared/unknown-value';
import { probeInChild } from './quiet-probe';
import { useAccurateUnaryKernels } from './kernels';
import { describeKernelVariants, hoistEnableDirectives, kernelVariants, setWebgpuDeviceFeatures } from './variants';

/**
 * The WebGPU backend: tfjs-backend-webgpu on Dawn (the npm package `webgpu`, prebuilt dawn.node) in
 * the engine process. Dawn is loaded once per process; the adapter it offers is classified as a GPU
 * or a CPU adapter (SwiftShader, lavapipe, llvmpipe: far slower than wasm, so never chosen unless
 * forced).
 */

const MODULE = '@tensorflow/tfjs-backend-webgpu';
/** Features the engine's kernels use where the adapter has them. */
const OPTIONAL_FEATURES: readonly string[] = ['shader-f16', 'subgroups', 'timestamp-query'];

interface AdapterInfoLike {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter?: boolean;
}

/** Why an adapter is a CPU (software) adapter, or null for a GPU. */
export function cpuAdapterReason(info: AdapterInfoLike): string | null {
  if (info.architecture.toLowerCase() === 'swiftshader') return 'SwiftShader, a Vulkan implementation on the CPU';
  if (info.vendor.toLowerCase() === 'google') return 'vendor google (SwiftShader), a Vulkan implementation on the CPU';
  const text = `${info.device} ${info.description}`;
  const software = /swiftshader|llvmpipe|lavapipe|softpipe|\bsoftware\b|\bcpu\b/i.exec(text);
  if (software) return `${software[0]}, a software implementation on the CPU`;
  if (info.isFallbackAdapter === true) return 'the adapter says it is a fallback (software) adapter';
  return null;
}

interface Probe {
  report: WebgpuReport;
  gpu: GPU | null;
}

let probed: Promise<Probe> | null = null;

/** What an adapter tells about itself, in plain data (so a probe in a child process can send it). */
export interface AdapterFacts {
  info: AdapterInfoLike;
  features: string[];
  limits: WebgpuAdapter['limits'];
}

export function adapterFacts(adapter: GPUAdapter): AdapterFacts {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const l = adapter.limits;
  return {
    info: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      isFallbackAdapter: info.isFallbackAdapter === true,
    },
    features: [...adapter.features],
    limits: {
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  };
}

export function adapterName(a: WebgpuAdapter): string {
  const what = [a.vendor, a.architecture].filter((s) => s !== '').join(' ') || 'unnamed adapter';
  return a.description ? `${what} (${a.description})` : what;
}

export function dawnFailedReport(error: string): WebgpuReport {
  return { status: 'dawn-failed', adapter: null, detail: `Dawn failed to load: ${error.split('\n')[0]}` };
}

export function adapterErrorReport(error: string): WebgpuReport {
  return { status: 'no-adapter', adapter: null, detail: `no adapter: ${error.split('\n')[0]}` };
}

/** The report on the adapter Dawn offered (null: none): a GPU, or a CPU adapter passed over unless forced. */
export function adapterReport(facts: AdapterFacts | null): WebgpuReport {
  if (!facts) {
    return {
      status: 'no-adapter',
      adapter: null,
      detail:
        "no adapter: Dawn found no Vulkan, Metal or D3D12 device it accepts (on Linux: install libvulkan1 and the GPU vendor's Vulkan driver)",
    };
  }
  const { info, limits } = facts;
  const described: WebgpuAdapter = {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    fallback: info.isFallbackAdapter === true,
    features: OPTIONAL_FEATURES.filter((f) => facts.features.includes(f)),
    limits,
  };
  const cpu = cpuAdapterReason(info);
  if (cpu) {
    return {
      status: 'cpu-adapter',
      adapter: described,
      detail: `CPU adapter ${adapterName(described)}: ${cpu}; far slower than wasm, so used only when forced (--backend webgpu or MIMIR_BACKEND=webgpu)`,
    };
  }
  return { status: 'gpu', adapter: described, detail: `GPU adapter ${adapterName(described)}` };
}

async function probeOnce(): Promise<Probe> {
  let gpu: GPU;
  try {
    const dawn = (await import('webgpu')) as { create(options: string[]): GPU; globals: object };
    // tfjs-backend-webgpu reads GPUBufferUsage, GPUMapMode ... as globals, as in a browser.
    for (const [name, value] of Object.entries(dawn.globals)) {
      if (!(name in globalThis)) Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
    }
    gpu = dawn.create([]);
  } catch (error) {
    return { gpu: null, report: dawnFailedReport(errorMessage(error)) };
  }
  try {
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    return { gpu, report: adapterReport(adapter ? adapterFacts(adapter) : null) };
  } catch (error) {
    return { gpu, report: adapterErrorReport(errorMessage(error)) };
  }
}

/** The report of a probe in a child process, which keeps Dawn's and Vulkan's messages off this one's stderr. */
async function quietWebgpuReport(): Promise<WebgpuReport> {
  const found = await probeInChild();
  if ('loadError' in found) return dawnFailedReport(found.loadError);
  if ('adapterError' in found) return adapterErrorReport(found.adapterError);
  return adapterReport(found.facts);
}

/** Dawn's adapter, probed once per process. */
export function probeWebgpu(): Promise<Probe> {
  probed ??= probeOnce();
  return probed;
}

function installNavigatorGpu(gpu: GPU): void {
  const holder = globalThis as { navigator?: object };
  if (holder.navigator === undefined) {
    Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  }
  const navigator = holder.navigator as { gpu?: GPU };
  if (navigator.gpu !== gpu)
    Object.defineProperty(navigator, 'gpu', { value: gpu, configurable: true, writable: true });
}

let registered = false;
const deviceErrors: string[] = [];

/** The WebGPU device's errors since the last call (validation, out of memory), emptied. */
export function takeWebgpuDeviceErrors(): string[] {
  return deviceErrors.splice(0);
}

/**
 * Registers the "webgpu" tfjs backend on Dawn's adapter. tfjs-backend-webgpu's own factory is not
 * used: it passes a required feature as a nested array, which Dawn refuses.
 */
async function registerWebgpuBackend(gpu: GPU): Promise<void> {
  if (registered) return;
  const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
  useAccurateUnaryKernels();
  installNavigatorGpu(gpu);
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend(
    'webgpu',
    async () => {
      const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
      if (!adapter) throw new Error('Dawn offered no adapter the second time');
      const l = adapter.limits;
      const device = await adapter.requestDevice({
        requiredFeatures: OPTIONAL_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[],
        requiredLimits: {
          maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
          maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
          maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
          maxBufferSize: l.maxBufferSize,
          maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
          maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
        },
      });
      setWebgpuDeviceFeatures(device.features);
      // The kernels' subgroup and f16 variants carry `enable` directives, which WGSL wants first.
      const createShaderModule = device.createShaderModule.bind(device);
      device.createShaderModule = (descriptor) =>
        createShaderModule({ ...descriptor, code: hoistEnableDirectives(descriptor.code) });
      // A shader or binding the device rejects is reported here, not thrown where it was recorded.
      device.addEventListener('uncapturederror', (event) => {
        const message = (event as GPUUncapturedErrorEvent).error.message.split('\n')[0] ?? 'unknown error';
        deviceErrors.push(message);
        console.error(`WebGPU device error: ${message}`);
      });
      // Every op on the GPU: tfjs would otherwise run ops on small tensors that still lie on the
      // CPU with its CPU kernels, a mix whose numerics and speed no test of this backend sees.
      tf.env().set('WEBGPU_CPU_FORWARD', false);
      return new WebGPUBackend(device, adapter.info);
    },
    0, // never picked by tf.ready() alone: selectBackend chooses
  );
  registered = true;
}

/**
 * The webgpu candidate: available on a GPU adapter, or on a CPU adapter when `forced`; the backend
 * is then registered and initialised once to prove it works.
 */
export async function probeWebgpuCandidate(
  forced: boolean,
): Promise<{ candidate: BackendCandidate; report: WebgpuReport }> {
  const passedOver = (reason: string, report: WebgpuReport) => ({
    candidate: { backend: 'webgpu' as const, module: MODULE, available: false, reason },
    report,
  });
  // Dawn is loaded into this process only where it will be used: a GPU was found, or webgpu is forced.
  if (!forced) {
    const quiet = await quietWebgpuReport();
    if (quiet.status === 'cpu-adapter') return passedOver(`passed over: ${quiet.detail}`, quiet);
    if (quiet.status !== 'gpu') return passedOver(quiet.detail, quiet);
  }
  const { gpu, report } = await probeWebgpu();
  const unavailable = (reason: string) => passedOver(reason, report);
  if (!gpu || !report.adapter) return unavailable(report.detail);
  if (report.status === 'cpu-adapter' && !forced) return unavailable(`passed over: ${report.detail}`);
  try {
    await registerWebgpuBackend(gpu);
    if (!(await tf.setBackend('webgpu'))) return unavailable(`failed to initialise on ${adapterName(report.adapter)}`);
  } catch (error) {
    return unavailable(`failed to initialise on ${adapterName(report.adapter)}: ${errorMessage(error).split('\n')[0]}`);
  }
  const features = `${report.adapter.features.length > 0 ? `; ${report.adapter.features.join(', ')}` : ''}; kernels: ${describeKernelVariants(kernelVariants())}`;
  const reason =
    report.status === 'gpu'
      ? `WebGPU on ${adapterName(report.adapter)}${features}`
      : `WebGPU forced onto the CPU adapter ${adapterName(report.adapter)}: correct but slow${features}`;
  return { candidate: { backend: 'webgpu', module: MODULE, available: true, reason }, report };
}
