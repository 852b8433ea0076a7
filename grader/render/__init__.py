"""Stage 4: render score sheets and evidence as reports, gradebooks and platform files."""
