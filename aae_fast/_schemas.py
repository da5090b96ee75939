"""The operator schemas of csrc/ops.cpp, mirrored for the pure-PyTorch fallback.

When the C++ extension is not built (or `AAE_FAST_DISABLE_EXT=1`), `aae_fast._backend` defines the
`aae_fast` library from these strings so that every op keeps its name, schema, fake impl and
torch.compile support. `tests/test_backend.py` checks that these strings equal the schemas the
extension registers, so the two cannot drift apart.
"""

SCHEMAS: dict[str, str] = {
    "sample_gaussian_mixture": (
        "sample_gaussian_mixture(Tensor(a!) rng_state, SymInt n, Tensor loc, Tensor scale, "
        "Tensor cum_weights, Tensor? labels, ScalarType dtype) -> Tensor"
    ),
    "sample_swiss_roll": (
        "sample_swiss_roll(Tensor(a!) rng_state, SymInt n, Tensor cum_weights, Tensor? labels, "
        "float radius, float turns, ScalarType dtype) -> Tensor"
    ),
    "sample_categorical": (
        "sample_categorical(Tensor(a!) rng_state, SymInt n, Tensor cum_weights, Tensor? labels, "
        "ScalarType dtype) -> Tensor"
    ),
}
