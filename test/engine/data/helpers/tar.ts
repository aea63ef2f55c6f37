import { gzipSync } from 'node:zlib';

/** A minimal ustar writer for test archives (independent of the reader under test). */
export function makeTar(
  files: { name: string; data: Uint8Array }[],
  options: { longNames?: 'gnu' | 'pax' } = {},
): Buffer {
  const blocks: Buffer[] = [];
  const header = (name: string, size: number, type: string) => {
    const h = Buffer.alloc(512);
    h.write(name.slice(0, 100), 0, 'utf8');
    h.write('0000644\0', 100, 'latin1');
    h.write('0000000\0', 108, 'latin1');
    h.write('0000000\0', 116, 'latin1');
    h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
    h.write('00000000000\0', 136, 'latin1');
    h.write('        ', 148, 'latin1');
    h.write(type, 156, 'latin1');
    h.write('ustar\0', 257, 'latin1');
    h.write('00', 263, 'latin1');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    return h;
  };
  const body = (data: Uint8Array) => {
    blocks.push(Buffer.from(data));
    const pad = (512 - (data.length % 512)) % 512;
    if (pad) blocks.push(Buffer.alloc(pad));
  };
  for (const file of files) {
    if (file.name.length > 100 && options.longNames === 'gnu') {
      const name = Buffer.from(file.name + '\0');
      blocks.push(header('././@LongLink', name.length, 'L'));
      body(name);
    } else if (file.name.length > 100 && options.longNames === 'pax') {
      const record = (len: number) => `${len} path=${file.name}\n`;
      let len = record(0).length;
      while (record(len).length !== len) len = record(len).length;
      const pax = Buffer.from(record(len));
      blocks.push(header('PaxHeader', pax.length, 'x'));
      body(pax);
    }
    blocks.push(header(file.name, file.data.length, '0'));
    body(file.data);
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export function makeTarGz(
  files: { name: string; data: Uint8Array }[],
  options: { longNames?: 'gnu' | 'pax' } = {},
): Buffer {
  return gzipSync(makeTar(files, options));
}
