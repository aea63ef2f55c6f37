/** Common corruptions (ImageNet-C / CIFAR-10-C style, five severities) for robustness beyond the threat model. */
export { corruptImages, gaussianBlurImage, type CorruptOptions } from './corrupt';
export { SEVERITY_TABLES, severityParameter, tableForImageSize, type SeverityTable } from './tables';
export { diskKernel, boxResampleWeights, reflect101 } from './filters';
export { poisson } from './sampling';
