import { FinetuneRecord, type FinetuneRecord as FinetuneRecordType } from '@shared/finetune-config';
import type { ModelConfig } from '@shared/model-config';

/** What a fine-tuning checkpoint's run record says about its classifier (method, classes), or null when it has none. */
export function classifierRecord(runConfig: unknown): FinetuneRecordType | null {
  const parsed = FinetuneRecord.safeParse(runConfig);
  return parsed.success ? parsed.data : null;
}

/**
 * A fine-tuning record for a classifier that arrives without one (a timm model trained elsewhere),
 * so the loader can evaluate it: method 'natural' unless known, the classes as given or numbered,
 * the dataset unknown (the built-in set as a stand-in where it has enough classes).
 */
export function placeholderRecord(
  modelConfig: ModelConfig,
  numClasses: number,
  classNames: string[],
  method: string | null,
  importedFrom: string,
): FinetuneRecordType {
  const names =
    classNames.length === numClasses ? classNames : Array.from({ length: numClasses }, (_, i) => `class ${i}`);
  const dataset =
    numClasses <= 10
      ? { kind: 'builtin' as const, imageSize: modelConfig.imageSize, classes: numClasses }
      : { kind: 'folder' as const, root: `(unknown: imported from ${importedFrom})`, imageSize: modelConfig.imageSize };
  return FinetuneRecord.parse({
    method: method ?? 'natural',
    source: { kind: 'scratch', model: modelConfig },
    dataset,
    threat: { eps: 8 },
    optimizer: { baseLr: 1e-3 },
    numClasses,
    classNames: names,
  });
}
