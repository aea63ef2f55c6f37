import { existsSync } from 'node:fs';

/** Mesa 25's lavapipe, unpacked by scripts/install-lavapipe.sh: a CPU Vulkan device with shader-f16 and 8-wide subgroups. */
export const LAVAPIPE_ICD = `${process.env.MIMIR_LAVAPIPE_DIR ?? '/opt/mimir-lavapipe'}/lvp_icd.json`;

/**
 * Points the Vulkan loader of this process at lavapipe, before Dawn is first loaded. No skip: a
 * machine without it fails here, saying what to run.
 */
export function useLavapipe(): void {
  requireLavapipe();
  process.env.VK_ICD_FILENAMES = LAVAPIPE_ICD;
}

/** Fails where lavapipe is missing, saying what to run (no skip). */
export function requireLavapipe(): void {
  if (!existsSync(LAVAPIPE_ICD)) {
    throw new Error(
      `lavapipe's Vulkan ICD ${LAVAPIPE_ICD} is missing: run scripts/install-lavapipe.sh (Mesa 25 from bookworm-backports; .ci/run does)`,
    );
  }
}
