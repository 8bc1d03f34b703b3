"""Running and reporting: the runner, parameters, results, provenance, figures, rendering; imports no other room."""
