import { kernelSuite } from './kernel-suite';

kernelSuite(1);
