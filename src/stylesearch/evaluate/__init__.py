"""Stage 4, evaluate: retrieval metrics, the quality study and the HTML report."""
