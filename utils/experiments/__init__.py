"""One helper module per notebook's experiment; may import every other room."""
