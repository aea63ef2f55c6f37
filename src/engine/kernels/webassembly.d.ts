// The part of the WebAssembly JS API the engine's kernels use. Node has it as a global, but
// @types/node does not declare it (only TypeScript's DOM lib does, which Node code must not include).
declare namespace WebAssembly {
  class Memory {
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
  }
  class Module {
    constructor(bytes: Uint8Array);
  }
  class Instance {
    constructor(module: Module, imports: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
}
