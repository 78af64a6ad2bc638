"""Camera and file ingestion: sources, decoding, reconnects. Produces timestamped `Frame`s."""
