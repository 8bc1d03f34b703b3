"""What experiments are built from: data, tokenizers, model builders, batching, training, metrics, devices."""
