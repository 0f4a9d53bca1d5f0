"""The two state contracts: what a pooled Carbon feature means (torch-free, shared by pooling and the cache)."""

CONTRACT_V2 = "l2_normalized_v2"
CONTRACT_LEGACY = "legacy_raw_v1"
CONTRACTS = (CONTRACT_V2, CONTRACT_LEGACY)
NO_LOCUS = -1  # the locus value of whole-window pooling, in tensors and cache records
