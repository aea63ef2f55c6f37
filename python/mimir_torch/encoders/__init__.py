"""Encoders beyond the plain ViT (src/engine/model/convit.ts, cait.ts), on the workbench's parameter
names and layouts: ConViT and CaiT with timm's names, token-pooled classifiers, and the MAE over them."""
