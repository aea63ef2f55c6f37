import { wasmKernelSuite } from './kernel-suite';

// tfjs-wasm's multi-threaded build: the kernels split their work over two threads.
wasmKernelSuite(2);
