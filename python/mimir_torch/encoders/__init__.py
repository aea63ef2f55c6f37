"""Hierarchical encoders (issue 18): ConvNeXt with SparK-style sparse masked pre-training and Swin with
GreenMIM-style group window attention, as nn.Modules with timm's module names (their state dicts load
into timm's models)."""
