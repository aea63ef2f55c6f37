import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeTarGz } from './tar';

export const CLASS_NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

/** The label and pixel bytes a generated record holds: recognisable per (file, record, channel, pixel). */
export function recordLabel(file: number, record: number): number {
  return (file * 7 + record * 3) % 10;
}
export function recordByte(file: number, record: number, channel: number, pixel: number): number {
  return (file * 31 + record * 17 + channel * 85 + pixel * 3) % 256;
}

/** One CIFAR-10 binary batch file in the official layout: records of 1 label byte + 3072 bytes CHW. */
export function makeBatchFile(fileIndex: number, records: number): Buffer {
  const data = Buffer.alloc(records * 3073);
  for (let r = 0; r < records; r++) {
    const o = r * 3073;
    data[o] = recordLabel(fileIndex, r);
    for (let c = 0; c < 3; c++)
      for (let p = 0; p < 1024; p++) data[o + 1 + c * 1024 + p] = recordByte(fileIndex, r, c, p);
  }
  return data;
}

export const BATCH_NAMES = [
  'data_batch_1.bin',
  'data_batch_2.bin',
  'data_batch_3.bin',
  'data_batch_4.bin',
  'data_batch_5.bin',
  'test_batch.bin',
];

export function cifarFiles(records: number): { name: string; data: Buffer }[] {
  return [
    { name: 'cifar-10-batches-bin/batches.meta.txt', data: Buffer.from(CLASS_NAMES.join('\n') + '\n\n') },
    ...BATCH_NAMES.map((name, i) => ({ name: `cifar-10-batches-bin/${name}`, data: makeBatchFile(i, records) })),
    { name: 'cifar-10-batches-bin/readme.html', data: Buffer.from('<html></html>') },
  ];
}

/** Writes the extracted folder <dir>/cifar-10-batches-bin and returns that folder. */
export async function writeCifarFolder(dir: string, records: number): Promise<string> {
  for (const file of cifarFiles(records)) {
    await mkdir(path.dirname(path.join(dir, file.name)), { recursive: true });
    await writeFile(path.join(dir, file.name), file.data);
  }
  return path.join(dir, 'cifar-10-batches-bin');
}

export function cifarArchive(records: number): Buffer {
  return makeTarGz(cifarFiles(records));
}
