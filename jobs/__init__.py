"""Job functions that chunksum's arq workers run."""
