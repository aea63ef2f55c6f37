import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { WebgpuAdapter } from '@shared/system';

/**
 * Dawn's probe, run in a child process. Loading Dawn makes the Vulkan loader and drivers write to
 * the process's stderr (on a machine with libvulkan1 and no GPU driver: "Failed to detect any valid
 * GPUs", mesa's XDG_RUNTIME_DIR complaint, Dawn's refusal of lavapipe), so every command would print
 * them. The child's stderr is dropped; its one JSON line says what it found.
 */

const Limits = WebgpuAdapter.shape.limits;

export const ChildProbe = z.union([
  z.object({ loadError: z.string() }),
  z.object({ adapterError: z.string() }),
  z.object({
    facts: z
      .object({
        info: z.object({
          vendor: z.string(),
          architecture: z.string(),
          device: z.string(),
          description: z.string(),
          isFallbackAdapter: z.boolean(),
        }),
        features: z.array(z.string()),
        limits: Limits,
      })
      .nullable(),
  }),
]);
export type ChildProbe = z.infer<typeof ChildProbe>;

const LIMIT_NAMES = Object.keys(Limits.shape);

/** Runs in the child (node --input-type=module -e): the same requestAdapter as the engine's own probe. */
const SCRIPT = `
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
let gpu;
try {
  const dawn = await import(process.env.MIMIR_WEBGPU_ENTRY);
  gpu = dawn.create([]);
} catch (e) { say({ loadError: String(e && e.message || e) }); process.exit(0); }
try {
  const a = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!a) { say({ facts: null }); process.exit(0); }
  const i = a.info;
  const limits = Object.fromEntries(${JSON.stringify(LIMIT_NAMES)}.map((k) => [k, a.limits[k]]));
  say({ facts: { info: { vendor: i.vendor, architecture: i.architecture, device: i.device,
    description: i.description, isFallbackAdapter: i.isFallbackAdapter === true },
    features: [...a.features], limits } });
} catch (e) { say({ adapterError: String(e && e.message || e) }); }
process.exit(0);
`;

let probed: Promise<ChildProbe> | null = null;

/** What Dawn finds, asked once per process of a child whose stderr is dropped. */
export function probeInChild(): Promise<ChildProbe> {
  probed ??= runChild();
  return probed;
}

function runChild(): Promise<ChildProbe> {
  let entry: string;
  try {
    entry = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
  } catch (error) {
    return Promise.resolve({ loadError: `the webgpu package is not installed (${String(error)})` });
  }
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', SCRIPT], {
      // Electron's utility process: run its binary as Node.
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1', MIMIR_WEBGPU_ENTRY: entry },
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 60_000,
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', (error) => resolve({ loadError: `the WebGPU probe did not start: ${error.message}` }));
    child.on('close', (code, signal) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        resolve(ChildProbe.parse(JSON.parse(line)));
      } catch {
        resolve({ loadError: `the WebGPU probe ended (${signal ?? `exit ${code}`}) without an answer` });
      }
    });
  });
}
