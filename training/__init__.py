"""Training and fine-tuning HTS-AT: data sources, soundscapes, the training loop and its command."""
