/**
 * ViT masked autoencoder and fine-tuning classifier (spec section 2), in TensorFlow.js.
 * Encoders (model.encoder.kind: vit, convstem, ...) plug in at one place, encoders.ts (its comment
 * lists what an encoder supplies); vit.ts is the plain ViT.
 *
 * Parameters (params.ts): a ParamMap = Map<timm/MAE name, tf.Variable>, linear weights [in, out].
 *   initMaeParams(config, rng) / initClassifierParams(config, numClasses, rng, {headInitStd})
 *   classifierParamsFromEncoder(maeParams, config, numClasses, rng) copies the backbone, fresh fc_norm + head.
 *   maeParamSpecs / classifierParamSpecs (names, shapes, roles for weight decay), checkParams, disposeParams.
 * Fixed position embeddings: sincosPosEmbed(width, grid) -> Float32Array [(1 + grid^2) * width], cls row zero.
 * Patches: patchify(images, p) [N,H,W,C] -> [N,L,p*p*C]; unpatchify; gatherPatches(patches, ids)
 *   (differentiable on every backend); batchGather (constants only; avoids tfjs-wasm's broken
 *   gather with batchDims); normalizePatches(config, patches).
 * Masking: randomMasking(rng, N, L, ratio = 0.75) -> PatchMask {visibleIds, maskedIds (int32), mask, dispose}.
 * MAE: encoderInput(config, images, mask) (the visible patches for a ViT); encodeVisible(params, config, input, visibleIds, opts)
 *   -> latent [N, 1+Lv, D]; decode(params, config, latent, mask, opts) -> [N, L, K] (visible then masked);
 *   orderedTargets(config, images, mask); reconstructionLoss(pred, target, numVisible, {normPixLoss});
 *   maeForward(...) for the whole pass (optional visible-patch delta); toSpatialOrder for display.
 * Classifier: classifierForward(params, config, images, opts) -> {logits, features};
 *   makeClassifier(params, config, opts) -> (x: Tensor4D) => logits Tensor2D.
 * ForwardOptions: {attention: 'auto'|'flash'|'kernels'|'sliced'|'batched', trainParams (false = constants, for attacks),
 *   dropPath: {rate, rng}}. attentionSettings.savedProbabilitiesBudget bounds the memory the sliced
 *   (wasm) attention keeps for its backward pass.
 * Layers with hand-written gradients (fast on wasm): linear, layerNorm, gelu, multiHeadAttention.
 * Every forward is a pure function of (params, inputs), differentiable w.r.t. params and pixels on
 * cpu, wasm and tensorflow backends (no gather or conv2d-filter gradient needed).
 */
export * from './attention';
export * from './classifier';
export * from './layers';
export * from './mae';
export * from './masking';
export * from './params';
export * from './patches';
export * from './pos-embed';
export * from './transformer';
export * from './encoders';
export * from './param-specs';
export * from './tokens';
export * from './vit';
export * from './convstem';
