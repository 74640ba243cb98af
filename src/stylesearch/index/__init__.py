"""Stage 5, index: embed the catalogue in resumable chunks into a FAISS index with its manifest."""
