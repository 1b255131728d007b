"""The training tests' locally built tokenizers and tiny models (no hub), shared here."""

from tests.train.conftest import chatml_tok_dir, llama3_tok_dir, tiny_model_dir, tiny_tok_dir  # noqa: F401
