import { wasmKernelSuite } from './kernel-suite';

wasmKernelSuite(1);
