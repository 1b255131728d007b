"""Fine-tuning: model loading (QLoRA, LoRA, full), the tiny-model builder, packing and collation, the
per-worker Ray Train loop, checkpoints and export."""
