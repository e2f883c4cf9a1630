"""Assets of the code index."""
