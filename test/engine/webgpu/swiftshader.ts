import { existsSync } from 'node:fs';

/** Debian chromium's SwiftShader ICD: a Vulkan device on the CPU for Dawn (gpu-notes.md). */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** Fails where SwiftShader is missing, saying what to install (no skip). */
export function requireSwiftShader(): void {
  if (!existsSync(SWIFTSHADER_ICD)) {
    throw new Error(
      `SwiftShader's Vulkan ICD ${SWIFTSHADER_ICD} is missing: install Debian's chromium and libvulkan1 (apt-get install -y chromium libvulkan1); .ci/run does`,
    );
  }
}

/**
 * Points the Vulkan loader of this process at SwiftShader, before Dawn is first loaded. No skip: a
 * machine without it fails here, saying what to install.
 */
export function useSwiftShader(): void {
  requireSwiftShader();
  process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
}
