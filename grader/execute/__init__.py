"""Stage 1: run untrusted student code (notebooks, modules) and bring back data only."""
