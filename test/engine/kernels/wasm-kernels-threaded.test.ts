import { kernelSuite } from './kernel-suite';

// tfjs-wasm's multi-threaded build: the kernels split their work over two threads.
kernelSuite(2);
