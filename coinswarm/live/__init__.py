"""The live side: servers, transport, store and the runner around the pure core."""
