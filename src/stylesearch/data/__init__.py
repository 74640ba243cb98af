"""Stage 1, data: read a catalogue (Kaggle folder, HF dataset, CSV/parquet), clean it and split it."""
