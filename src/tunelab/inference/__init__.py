"""Running fine-tuned models: label scoring (shared with training's validation) and completions."""
