"""Stage 7, serve: the HTTP API and the web page over a Searcher."""
