"""Training, evaluation, calibration and export. Importing this package must not import
torch: torch-dependent modules import it themselves, so torch-free parts (the synthetic
generator, manifests, the registry) work in a serving install."""
