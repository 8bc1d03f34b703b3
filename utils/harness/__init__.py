"""Running notebooks: parameters, results, figures, showing source, the runner and publishing; imports no other room."""
