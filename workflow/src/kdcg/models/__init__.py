"""HIP-NN models: building, the repulsive prior, saving and loading, pair lists,
ensembles, evaluation for MD, ML-IAP export."""
