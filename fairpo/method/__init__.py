"""The method layer: FairPO's losses and the baselines', the group weights, the per-label heads and the
network, which objective each method combines, and the metrics that score it. Imports nothing above it."""
