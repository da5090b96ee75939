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
    "adversarial_d_loss": "adversarial_d_loss(Tensor real_logits, Tensor fake_logits) -> Tensor",
    "adversarial_d_loss_backward": (
        "adversarial_d_loss_backward(Tensor grad, Tensor? real_logits, Tensor? fake_logits) -> "
        "(Tensor, Tensor)"
    ),
    "adversarial_g_loss": "adversarial_g_loss(Tensor fake_logits) -> Tensor",
    "adversarial_g_loss_backward": (
        "adversarial_g_loss_backward(Tensor grad, Tensor fake_logits) -> Tensor"
    ),
    "reconstruction_loss": "reconstruction_loss(Tensor output, Tensor target, str kind) -> Tensor",
    "reconstruction_loss_backward": (
        "reconstruction_loss_backward(Tensor grad, Tensor output, Tensor target, str kind, "
        "bool[2] output_mask) -> (Tensor, Tensor)"
    ),
    "parzen_log_likelihood": (
        "parzen_log_likelihood(Tensor x, Tensor samples, float sigma) -> Tensor"
    ),
    "mmd": "mmd(Tensor x, Tensor y, float[] bandwidths, bool unbiased) -> Tensor",
    "mmd_backward": (
        "mmd_backward(Tensor grad, Tensor x, Tensor y, float[] bandwidths, bool unbiased, "
        "bool[2] output_mask) -> (Tensor, Tensor)"
    ),
    "gaussian_reparameterize": (
        "gaussian_reparameterize(Tensor rng_state, Tensor mu, Tensor logvar) -> (Tensor z, Tensor "
        "state)"
    ),
    "gaussian_reparameterize_backward": (
        "gaussian_reparameterize_backward(Tensor grad, Tensor rng_state, Tensor logvar) -> Tensor"
    ),
    "linear_act": (
        "linear_act(Tensor x, Tensor weight, Tensor? bias, str activation, float negative_slope) -> "
        "Tensor"
    ),
    "linear_act_backward": (
        "linear_act_backward(Tensor grad, Tensor y, Tensor? x, Tensor? weight, str activation, "
        "float negative_slope, bool[3] output_mask) -> (Tensor, Tensor, Tensor)"
    ),
}
