"""The console's pages, one module per part; each gives ``routes(console)``."""
