"""Stage 2, model: load CLIP (Hub, local folder, random-init presets), checkpoints, ONNX backends."""
