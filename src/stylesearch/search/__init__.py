"""Stage 6, search: the Searcher over an index, hybrid (CLIP + BM25 + attributes) and query encoders."""
