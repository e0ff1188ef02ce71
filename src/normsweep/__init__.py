"""normsweep: how input normalization changes what a CNN learns."""
